"""Why each seed of a finished copy run fails long sequences, sequence by
sequence.

    python -m experiments.copy_failures RUN_DIR [--length 120]
        [--sequences 512] [--memory_size 128] [--out FILE]

Every seed's reported (best) parameters copy the same `--sequences` fresh
sequences of `--length`; each sequence with a wrong bit is told apart by its
first wrong output step (`ntm_jax.analysis.copy_failures`: the row was
overwritten, the read head was off its row, or it was on it and read
wrongly). Prints a row per seed and writes the records as JSON to `--out`
(default RUN_DIR/failures_L<length>.json). No training.
"""
import json
import os
import sys

from absl import app
from absl import flags

_LENGTH = flags.DEFINE_integer("length", 120, "Length of the test sequences.")
_SEQUENCES = flags.DEFINE_integer("sequences", 512, "Fresh test sequences per seed.")
_MEMORY = flags.DEFINE_integer("memory_size", 128, "Memory rows N of the test.")
_BATCH = flags.DEFINE_integer("batch", 128, "Sequences per model call.")
_OUT = flags.DEFINE_string("out", None, "JSON file to write (default "
                           "RUN_DIR/failures_L<length>.json).")


def _check(run_dir: str, length: int, sequences: int, memory: int, batch: int) -> None:
  """Raises ValueError (one line) before anything is loaded or compiled."""
  from ntm_jax.runs import rundir
  if not os.path.exists(rundir.config_path(run_dir)):
    raise ValueError(f"{run_dir} is not a run directory (no config.json)")
  config = rundir.saved_config(run_dir)
  if config.task != "copy" or config.model_kind != "ntm":
    raise ValueError(f"{run_dir} is a {config.model_kind} run of {config.task!r}: "
                     "this tool reads copy NTMs")
  if not os.path.isdir(os.path.join(run_dir, "checkpoints")):
    raise ValueError(f"{run_dir} has no checkpoints: no parameters to test")
  if min(length, sequences, batch) < 1 or sequences % batch:
    raise ValueError("--length, --sequences and --batch must be positive, and "
                     f"--sequences a multiple of --batch (got {sequences}, {batch})")
  if memory < length:
    raise ValueError(f"--memory_size {memory} is smaller than --length {length}: "
                     "every long sequence would overwrite itself")


def seed_report(params, model_config, task, length, sequences, memory, batch) -> dict:
  """`copy_failures.seed_failures` of one seed over `sequences` sequences,
  probed `batch` at a time (the same sequences for every seed)."""
  import jax
  import numpy as np
  from ntm_jax.analysis import copy_failures, head_statistics
  names = ("logits", "targets", "inputs", "read_weights", "write_weights")
  parts = [head_statistics.probe(params, model_config, task, length, memory, batch,
                                 rng=jax.random.PRNGKey(start))
           for start in range(0, sequences, batch)]
  probed = {name: np.concatenate([part[name] for part in parts]) for name in names}
  return copy_failures.seed_failures(probed, length)


def report(run_dir, length, sequences, memory, batch, log=print) -> list:
  from ntm_jax.runs import checkpoints
  config, states = checkpoints.load_run(run_dir)
  task = config.make_task()
  log(f"{run_dir}: {sequences} sequences of length {length}, memory {memory}; "
      "per seed: failed sequences, bit errors per sequence, first wrong step's cause")
  log("seed  failed  bit_err  overwritten misplaced blurred  after_repeat  first wrong step: "
      "early middle late  median  |offset|")
  records = []
  for index in range(config.train.seeds):
    params = checkpoints.seed_params(states, index)
    record = {"seed_index": index, **seed_report(params, config.model, task, length,
                                                 sequences, memory, batch)}
    records.append(record)
    c, third = record["causes"], record["first_step_third"]
    first, offset = record["median_first_step"], record["median_abs_offset"]
    log(f"{index:4d} {record['failed']:7d} {record['bit_errors']:8.3f} {c['overwritten']:12d} "
        f"{c['misplaced']:9d} {c['blurred']:7d} {record['landed_after_repeat']:13d} "
        f"{third['early']:24d} {third['middle']:6d} {third['late']:4d} "
        f"{'-' if first is None else f'{first:.0f}':>7} {'-' if offset is None else f'{offset:.0f}':>9}")
  return records


def main(argv):
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # orbax's info lines
  if len(argv) != 2:
    sys.exit("error: usage: python -m experiments.copy_failures RUN_DIR [--length 120] ...")
  run_dir = argv[1]
  settings = (_LENGTH.value, _SEQUENCES.value, _MEMORY.value, _BATCH.value)
  out = _OUT.value or os.path.join(run_dir, f"failures_L{_LENGTH.value}.json")
  try:
    _check(run_dir, *settings)
  except ValueError as error:
    sys.exit(f"error: {error}")
  records = report(run_dir, *settings)
  with open(out, "w") as f:
    json.dump({"length": settings[0], "sequences": settings[1], "memory_size": settings[2],
               "seeds": records}, f, indent=1)
  print(f"wrote {out}")


if __name__ == "__main__":
  from experiments.common import parse_flags
  app.run(main, flags_parser=parse_flags)
