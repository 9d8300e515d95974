"""`--help` of a training experiment: every flag it takes, and exit status 0.

absl's `--help` lists only the flags of the main module (the experiment
file); the shared ones are defined in `experiments/common.py`, so it listed
none of them (`--helpfull` did, among absl's own), and absl ends every help
with exit status 1. Each experiment module calls, after defining its flags:

    help_flags.list_shared_flags()
"""
import sys

from absl import app
from absl import flags

from experiments import common

# Flags this module declares key are the caller's (the experiment's), not
# this module's: absl looks past a module that disclaims them.
flags.disclaim_key_flags()


class _Help(app.HelpFlag):
  """--help and --helpshort: the experiment's docstring and flags, exit 0."""

  def parse(self, arg):
    if self._parse(arg):
      app.usage(shorthelp=True, writeto_stdout=True)
      sys.exit(0)


class _Helpshort(_Help):
  NAME, SHORT_NAME = "helpshort", None


class _Helpfull(app.HelpfullFlag):
  """--helpfull: every flag of every module, exit 0."""

  def parse(self, arg):
    if self._parse(arg):
      app.usage(writeto_stdout=True)
      sys.exit(0)


def list_shared_flags() -> None:
  """Makes the shared flags (`common.define_flags`) key flags of the calling
  experiment module, so its `--help` lists them beside its own, and lets the
  help flags exit 0. Idempotent (tests load experiments several times)."""
  flags.adopt_module_key_flags(common)
  app.define_help_flags()  # absl's, once per process; app.run then keeps ours
  for name, replacement in (("help", _Help), ("helpshort", _Helpshort),
                            ("helpfull", _Helpfull)):
    if isinstance(flags.FLAGS[name], replacement):
      continue
    short = flags.FLAGS[name].short_name
    delattr(flags.FLAGS, name)
    if short and short in flags.FLAGS:
      delattr(flags.FLAGS, short)
    flags.DEFINE_flag(replacement(), module_name="absl.app")
