"""Re-draw a trained model's pictures, from a run directory or a pretrained model.

    python -m experiments.inspect RUN_DIR [--seed K] [--length L] [--memory_size N]
    python -m experiments.inspect --pretrained copy [--length L] [--memory_size N] [--out_dir DIR]

A run directory's PNGs go to RUN_DIR/plots/ (see
`ntm_jax.analysis.inspection.write_run_plots`); a pretrained model's to --out_dir
(default ./inspect_<task>/). Prints that seed's mean bit errors per sequence
over 32 fresh sequences of the length, then one PNG path per line. No
training: a few seconds, most of it compiling the model once.
"""
import os
import sys

from absl import app
from absl import flags

_PRETRAINED = flags.DEFINE_string("pretrained", None,
                                  "Draw a shipped model (e.g. copy) instead of RUN_DIR.")
_SEED = flags.DEFINE_integer("seed", None, "Seed index to draw (default: the best seed).")
_LENGTH = flags.DEFINE_integer("length", None,
                               "Test sequence length (default: the longest training length).")
_MEMORY = flags.DEFINE_integer(
    "memory_size", None, "Memory rows N at test time (default: the run's test memory, "
    "raised to what --length needs).")
_OUT = flags.DEFINE_string("out_dir", None, "Where the PNGs go (--pretrained only; "
                           "default ./inspect_<task>/).")


def inspect_pretrained(task_name: str, length=None, memory_size=None, out_dir=None) -> dict:
  """Draws a shipped model; returns draw_model's result plus "length"."""
  import ntm_jax.analysis.inspection as inspection
  import ntm_jax.pretrained as pretrained
  from ntm_jax.tasks import make_task
  model_config, params = pretrained.load(task_name)
  info = pretrained.info(task_name)
  task = make_task(info["task"], **info["task_options"])
  length = length or info["train"]["max_length"]
  memory_size = inspection.memory_for(
      task, length, memory_size,
      info["train"].get("test_memory_size") or getattr(model_config, "memory_rows", None))
  result = inspection.draw_model(model_config, params, task, length, memory_size,
                                 out_dir or f"inspect_{task_name}", tag=f"_L{length}",
                                 title=f"pretrained {task_name}")
  result["length"] = length
  return result


def main(argv):
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # orbax's info lines
  import ntm_jax.analysis.inspection as inspection
  try:
    if _PRETRAINED.value:
      if len(argv) > 1:
        raise ValueError("give either RUN_DIR or --pretrained, not both")
      if _SEED.value is not None:
        raise ValueError("--seed applies to a RUN_DIR; a pretrained model is one seed")
      result = inspect_pretrained(_PRETRAINED.value, _LENGTH.value, _MEMORY.value, _OUT.value)
      what = f"pretrained {_PRETRAINED.value}"
    else:
      if len(argv) != 2:
        raise ValueError("usage: python -m experiments.inspect RUN_DIR [--seed K] [--length L] "
                         "[--memory_size N] | --pretrained TASK [--out_dir DIR]")
      if _OUT.value:
        raise ValueError("--out_dir applies to --pretrained; a run's plots go to RUN_DIR/plots")
      if not os.path.exists(os.path.join(argv[1], "config.json")):
        raise ValueError(f"{argv[1]} is not a run directory (no config.json)")
      result = inspection.write_run_plots(argv[1], _SEED.value, _LENGTH.value, _MEMORY.value)
      what = f"seed index {result['seed']}"
  except ValueError as error:
    sys.exit(f"error: {error}")
  memory = "" if result["memory_size"] is None else f", memory {result['memory_size']}"
  print(f"{what}: {result['bit_errors']:.3f} bit errors per sequence at length "
        f"{result['length']}{memory}")
  for path in result["paths"]:
    print(path)


if __name__ == "__main__":
  app.run(main)
