"""Every seed of a run at test lengths beyond the run's own, on a larger
memory: the study's stretch measurement (length 500 with 512 rows).

    PYTHONPATH=. python docs/copy_generalisation/long_lengths.py RUN_DIR [--lengths 200,500]
        [--memory_size 512] [--sequences 32]

Prints, per length, each seed's mean bit errors per sequence on its
reported parameters, the number of seeds under 1 and the median.
"""
import argparse
import functools

import jax
import numpy as np

from ntm_jax import training
from ntm_jax.runs import checkpoints


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("run_dir")
  parser.add_argument("--lengths", default="200,500")
  parser.add_argument("--memory_size", type=int, default=512)
  parser.add_argument("--sequences", type=int, default=32)
  args = parser.parse_args()
  config, states = checkpoints.load_run(args.run_dir)
  task = config.make_task()
  for length in (int(x) for x in args.lengths.split(",")):
    errors = jax.jit(functools.partial(
        training.evaluate_lengths, task=task, model_config=config.model, lengths=[length],
        batch_size=args.sequences, memory_size=args.memory_size))
    per_seed = []
    for seed in range(config.train.seeds):
      params = checkpoints.seed_params(states, seed)
      rng = jax.random.PRNGKey(20_000 + seed)
      per_seed.append(float(errors(params, rng)["bit_errors"][0]))
    per_seed = np.array(per_seed)
    print(f"length {length}, memory {args.memory_size}: "
          f"{int((per_seed < 1).sum())}/{len(per_seed)} seeds under 1 bit error per "
          f"sequence, median {np.median(per_seed):.2f}; per seed "
          + " ".join(f"{e:.1f}" for e in per_seed), flush=True)


if __name__ == "__main__":
  main()
