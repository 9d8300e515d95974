"""An experiment's flags in this process, for checking a sweep's trials.

absl defines flags once per process, and every experiment module defines
the shared ones (`experiments.common.define_flags`) with its own defaults,
so looking at a second experiment means dropping the first one's flags.
"""
import importlib
import sys

_loaded = []  # the experiment module whose flags absl's FLAGS holds now


def load_experiment(name: str):
  """Imports `experiments.<name>` (or the dotted module `name`) with its own
  flag defaults, replacing the flags another experiment defined here."""
  from absl import flags
  module = name if name.startswith("experiments.") else f"experiments.{name}"
  if _loaded == [module] and module in sys.modules:
    return sys.modules[module]
  for flag in list(flags.FLAGS):
    if (flags.FLAGS.find_module_defining_flag(flag) or "").startswith("experiments."):
      delattr(flags.FLAGS, flag)
  for other in [m for m in sys.modules if m.startswith("experiments.")
                and m not in ("experiments.common", "experiments.__init__")]:
    del sys.modules[other]
  loaded = importlib.import_module(module)
  _loaded[:] = [module]
  return loaded
