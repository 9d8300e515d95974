"""Re-draw a trained model's pictures, from a run directory or a pretrained model.

    python -m experiments.inspect RUN_DIR [--seed K] [--length L] [--memory_size N]
    python -m experiments.inspect --pretrained copy [--length L] [--memory_size N]
"""
import os
import sys

from absl import app
from absl import flags

_PRETRAINED = flags.DEFINE_string("pretrained", None, "Draw a shipped model, e.g. copy.")
_SEED = flags.DEFINE_integer("seed", None, "Seed index to draw (default: the best).")
_LENGTH = flags.DEFINE_integer("length", None, "Test sequence length.")
_MEMORY = flags.DEFINE_integer("memory_size", None, "Memory rows N at test time.")
_OUT = flags.DEFINE_string("out_dir", None, "Where the PNGs go (--pretrained only; "
                           "default inspect_<task>/).")


def main(argv):
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  from ntm_jax import inspection
  try:
    if _PRETRAINED.value:
      if len(argv) > 1:
        raise ValueError("give either RUN_DIR or --pretrained, not both")
      from ntm_jax import pretrained
      from ntm_jax.tasks import make_task
      model_config, params = pretrained.load(_PRETRAINED.value)
      info = pretrained.info(_PRETRAINED.value)
      task = make_task(info["task"], **info["task_options"])
      length = _LENGTH.value or info["train"]["max_length"]
      out_dir = _OUT.value or f"inspect_{_PRETRAINED.value}"
      result = inspection.draw_model(model_config, params, task, length,
                                     _MEMORY.value or info["train"]["test_memory_size"],
                                     out_dir, tag=f"_L{length}")
      what = f"pretrained {_PRETRAINED.value}"
    else:
      if len(argv) != 2:
        raise ValueError("usage: python -m experiments.inspect RUN_DIR | --pretrained TASK")
      if not os.path.exists(os.path.join(argv[1], "config.json")):
        raise ValueError(f"{argv[1]} is not a run directory (no config.json)")
      result = inspection.write_run_plots(argv[1], _SEED.value, _LENGTH.value, _MEMORY.value)
      what, length = f"seed index {result['seed']}", result["length"]
  except ValueError as error:
    sys.exit(f"error: {error}")
  print(f"{what}: {result['bit_errors']:.3f} bit errors per sequence at length {length}")
  for path in result["paths"]:
    print(path)


if __name__ == "__main__":
  app.run(main)
