"""One seed of a run at every training length 1-20 and at 40 and 120, on
the test's 128 rows and on the 32 trained with (64 sequences per length):
RESULTS.md, "Copy: generalisation to length 120", session 9.

    PYTHONPATH=. python docs/copy_generalisation/short_lengths_seed.py RUN_DIR SEED
"""
import functools
import sys

import jax

from ntm_jax import training
from ntm_jax.runs import checkpoints


def main():
  run_dir, seed = sys.argv[1], int(sys.argv[2])
  config, states = checkpoints.load_run(run_dir)
  task = config.make_task()
  params = checkpoints.seed_params(states, seed)
  lengths = list(range(1, 21)) + [40, 120]
  for rows, tested in ((128, lengths), (32, lengths[:20])):
    errors = jax.jit(functools.partial(
        training.evaluate_lengths, task=task, model_config=config.model, lengths=tested,
        batch_size=64, memory_size=rows))(params, jax.random.PRNGKey(777))["bit_errors"]
    print(f"memory {rows}: " + " ".join(
        f"L{length} {float(e):.2f}" for length, e in zip(tested, errors)), flush=True)


if __name__ == "__main__":
  main()
