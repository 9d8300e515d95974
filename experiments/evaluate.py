"""Every seed of a trained run at test lengths and memory sizes of your
choosing, e.g. beyond the run's own (length 500 on 512 rows).

    python -m experiments.evaluate RUN_DIR [--lengths 200,500] [--memory_size 512]
        [--sequences 32] [--seeds 0,3]

Prints, per length, each chosen seed's mean bit errors per sequence on its
reported parameters, how many are under 1 and the median. No training: a
few seconds per length, most of it compiling the model once.
"""
import os
import sys
from typing import Optional, Sequence

from absl import app
from absl import flags

_LENGTHS = flags.DEFINE_list("lengths", ["200", "500"], "Test sequence lengths.")
_MEMORY = flags.DEFINE_integer(
    "memory_size", None, "Memory rows N at test time (default: the run's test memory, "
    "raised to what each length needs).")
_SEQUENCES = flags.DEFINE_integer("sequences", 32, "Fresh test sequences per seed and length.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seed indices to test (default: all).")

# Seed index i draws its test sequences from PRNGKey(KEY_BASE + i): not the
# run's own test keys (seed + 10_000 + i), so these are other sequences,
# the same on every call.
KEY_BASE = 20_000


def evaluate_run(run_dir: str, lengths: Sequence[int], memory_size: Optional[int] = None,
                 sequences: int = 32, seeds: Optional[Sequence[int]] = None) -> dict:
  """Mean bit errors per sequence of each seed of a run at each length.

  Args:
    run_dir: a run directory with checkpoints.
    lengths: test lengths, each tested on its own (its sequences do not
      depend on the other lengths asked for).
    memory_size: memory rows at test time; None for the run's test memory,
      raised to what the task needs at each length (an LSTM has none).
    sequences: test sequences per seed and length.
    seeds: seed indices (default: every seed of the run).

  Returns:
    {"seeds": the indices, "memory_sizes": [L] (None for an LSTM),
     "bit_errors": numpy [seeds, L]}.
  """
  import functools

  import jax
  import numpy as np

  from ntm_jax import training
  from ntm_jax.analysis import inspection
  from ntm_jax.runs import checkpoints
  config, states = checkpoints.load_run(run_dir)
  task = config.make_task()
  seeds = list(range(config.train.seeds)) if seeds is None else list(seeds)
  rows = [inspection.memory_for(task, length, memory_size, config.model,
                                config.train.test_memory_size) for length in lengths]
  errors = np.zeros((len(seeds), len(lengths)))
  for j, (length, memory) in enumerate(zip(lengths, rows)):
    test = jax.jit(functools.partial(
        training.evaluate_lengths, task=task, model_config=config.model, lengths=[length],
        batch_size=sequences, memory_size=memory))
    for i, seed in enumerate(seeds):
      result = test(checkpoints.seed_params(states, seed), jax.random.PRNGKey(KEY_BASE + seed))
      errors[i, j] = float(result["bit_errors"][0])
  return {"seeds": seeds, "memory_sizes": rows, "bit_errors": errors}


def format_results(results: dict, lengths: Sequence[int]) -> str:
  """One line per length: seeds under 1 bit error, the median, each seed."""
  import numpy as np
  lines = []
  for j, length in enumerate(lengths):
    per_seed = results["bit_errors"][:, j]
    memory = results["memory_sizes"][j]
    where = f"length {length}" + ("" if memory is None else f", memory {memory}")
    lines.append(f"{where}: {int((per_seed < 1).sum())}/{len(per_seed)} seeds under 1 bit "
                 f"error per sequence, median {np.median(per_seed):.2f}; per seed "
                 + " ".join(f"{seed}:{e:.2f}" for seed, e in zip(results["seeds"], per_seed)))
  return "\n".join(lines)


def _inputs(argv) -> tuple:
  """(run_dir, lengths, seeds) checked before jax loads: ValueError, one line."""
  from ntm_jax.runs import rundir
  if len(argv) != 2:
    raise ValueError("usage: python -m experiments.evaluate RUN_DIR [--lengths L,...] "
                     "[--memory_size N] [--sequences S] [--seeds K,...]")
  run_dir = argv[1]
  if not os.path.exists(rundir.config_path(run_dir)):
    raise ValueError(f"{run_dir} is not a run directory (no config.json)")
  if not os.path.isdir(os.path.join(run_dir, "checkpoints")):
    raise ValueError(f"{run_dir} has no checkpoints yet: nothing to test")
  try:
    lengths = [int(x) for x in _LENGTHS.value]
    seeds = None if _SEEDS.value is None else [int(x) for x in _SEEDS.value]
  except ValueError:
    raise ValueError("--lengths and --seeds take comma-separated integers") from None
  if not lengths or min(lengths) < 1:
    raise ValueError(f"--lengths must be >= 1, got {_LENGTHS.value}")
  for flag in (_MEMORY, _SEQUENCES):
    if flag.value is not None and flag.value < 1:
      raise ValueError(f"--{flag.name} must be >= 1, got {flag.value}")
  count = rundir.saved_config(run_dir).train.seeds
  if seeds is not None and not all(0 <= s < count for s in seeds):
    raise ValueError(f"--seeds must be seed indices in [0, {count}), got {_SEEDS.value}")
  return run_dir, lengths, seeds


def main(argv):
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # orbax's info lines
  try:
    run_dir, lengths, seeds = _inputs(argv)
    results = evaluate_run(run_dir, lengths, _MEMORY.value, _SEQUENCES.value, seeds)
  except ValueError as error:
    sys.exit(f"error: {error}")
  print(format_results(results, lengths), flush=True)


if __name__ == "__main__":
  from experiments.common import parse_flags
  app.run(main, flags_parser=parse_flags)
