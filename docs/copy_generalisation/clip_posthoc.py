"""Every seed of a run at lengths 20 and 120 (memory 128), with the head clip
of the run's model replaced at test time: does a clip-bound key strength
beta limit the content jump to the start of a long sequence?

    PYTHONPATH=. python docs/copy_generalisation/clip_posthoc.py RUN_DIR 20,1000
"""
import dataclasses
import functools
import sys

import jax
import numpy as np

from ntm_jax import training
from ntm_jax.runs import checkpoints


def main():
  run_dir, clips = sys.argv[1], [float(c) for c in sys.argv[2].split(",")]
  config, states = checkpoints.load_run(run_dir)
  task = config.make_task()
  for clip in clips:
    model = dataclasses.replace(config.model, head_clip=clip)
    errors = jax.jit(functools.partial(
        training.evaluate_lengths, task=task, model_config=model, lengths=[20, 120],
        batch_size=32, memory_size=128))
    per_seed = np.array([
        [float(e) for e in errors(checkpoints.seed_params(states, seed),
                                  jax.random.PRNGKey(20_000 + seed))["bit_errors"]]
        for seed in range(config.train.seeds)])
    print(f"head_clip {clip}: under 1 bit error at L20 {(per_seed[:, 0] < 1).sum()}, "
          f"at L120 {(per_seed[:, 1] < 1).sum()}/{len(per_seed)}, median at L120 "
          f"{np.median(per_seed[:, 1]):.2f}; L120 per seed "
          + " ".join(f"{x:.0f}" for x in per_seed[:, 1]), flush=True)


if __name__ == "__main__":
  main()
