"""Re-draw a trained model's pictures, from a run directory or a pretrained model.

    python -m experiments.inspect RUN_DIR [--seed K] [--length L] [--memory_size N] [--out_dir DIR]
    python -m experiments.inspect --pretrained copy [--length L] [--memory_size N] [--out_dir DIR]

A run directory's PNGs go to RUN_DIR/plots/ (see
`ntm_jax.analysis.inspection.write_run_plots`), or to --out_dir (a run on
storage that cannot be written); a pretrained model's to --out_dir (default
./inspect_<task>/). Prints that seed's mean bit errors per sequence over 32
fresh sequences of the length, then one PNG path per line; a memory smaller
than the length needs gets one warning line first (on stderr). No training:
a few seconds, most of it compiling the model once.
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
_OUT = flags.DEFINE_string("out_dir", None, "Where the PNGs go (default: RUN_DIR/plots, "
                           "or ./inspect_<task>/ for --pretrained).")


def _warn(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def inspect_pretrained(task_name: str, length=None, memory_size=None, out_dir=None,
                       log=None) -> dict:
  """Draws a shipped model; returns draw_model's result plus "length". `log`
  gets a warning line when memory_size is too small for length."""
  import ntm_jax.analysis.inspection as inspection
  import ntm_jax.pretrained as pretrained
  from ntm_jax.tasks import make_task
  model_config, params = pretrained.load(task_name)
  info = pretrained.info(task_name)
  task = make_task(info["task"], **info["task_options"])
  length = length or info["train"]["max_length"]
  memory_size = inspection.memory_for(task, length, memory_size, model_config,
                                      info["train"].get("test_memory_size"))
  warning = inspection.memory_warning(task, length, memory_size)
  if warning and log is not None:
    log(warning)
  result = inspection.draw_model(model_config, params, task, length, memory_size,
                                 out_dir or f"inspect_{task_name}", tag=f"_L{length}",
                                 title=f"pretrained {task_name}")
  result["length"] = length
  return result


def _check_inputs(argv) -> None:
  """Every input, before jax loads: raises ValueError (one line)."""
  from ntm_jax.runs import rundir
  for flag in (_LENGTH, _MEMORY):
    if flag.value is not None and flag.value < 1:
      raise ValueError(f"--{flag.name} must be >= 1, got {flag.value}")
  if _PRETRAINED.value:
    if len(argv) > 1:
      raise ValueError("give either RUN_DIR or --pretrained, not both")
    if _SEED.value is not None:
      raise ValueError("--seed applies to a RUN_DIR; a pretrained model is one seed")
    import ntm_jax.pretrained as pretrained
    pretrained.info(_PRETRAINED.value)  # an unknown name: the shipped ones, in one line
    rundir.check_out_dir(_OUT.value or f"inspect_{_PRETRAINED.value}")
    return
  if len(argv) != 2:
    raise ValueError("usage: python -m experiments.inspect RUN_DIR [--seed K] [--length L] "
                     "[--memory_size N] [--out_dir DIR] | --pretrained TASK [--out_dir DIR]")
  run_dir = argv[1]
  if not os.path.isdir(run_dir):
    raise ValueError(f"RUN_DIR {run_dir} is not a directory")
  if not os.path.exists(rundir.config_path(run_dir)):
    raise ValueError(f"{run_dir} is not a run directory (no config.json)")
  seeds = rundir.saved_config(run_dir).train.seeds  # names config.json if it is broken
  if _SEED.value is not None and not 0 <= _SEED.value < seeds:
    raise ValueError(f"--seed must be a seed index in [0, {seeds}), got {_SEED.value}")
  if not os.path.isdir(os.path.join(run_dir, "checkpoints")):
    raise ValueError(f"{run_dir} has no checkpoints yet: nothing to draw")
  if _OUT.value:
    rundir.check_out_dir(_OUT.value)
    return
  try:
    rundir.check_out_dir(os.path.join(run_dir, "plots"), flag="RUN_DIR's plots folder")
  except ValueError as error:
    raise ValueError(f"{error}; pass --out_dir DIR to draw elsewhere") from None


def main(argv):
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # orbax's info lines
  try:
    _check_inputs(argv)
    import ntm_jax.analysis.inspection as inspection
    if _PRETRAINED.value:
      result = inspect_pretrained(_PRETRAINED.value, _LENGTH.value, _MEMORY.value, _OUT.value,
                                  log=_warn)
      what = f"pretrained {_PRETRAINED.value}"
    else:
      result = inspection.write_run_plots(argv[1], _SEED.value, _LENGTH.value, _MEMORY.value,
                                          out_dir=_OUT.value, log=_warn)
      what = f"seed index {result['seed']}"
  except ValueError as error:
    sys.exit(f"error: {error}")
  memory = "" if result["memory_size"] is None else f", memory {result['memory_size']}"
  print(f"{what}: {result['bit_errors']:.3f} bit errors per sequence at length "
        f"{result['length']}{memory}")
  for path in result["paths"]:
    print(path)


if __name__ == "__main__":
  from experiments.common import parse_flags
  app.run(main, flags_parser=parse_flags)
