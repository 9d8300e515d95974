"""Where a copy seed's errors at a long test length come from, sequence by
sequence: the study's evidence for "the read head misses the start".

    PYTHONPATH=. python docs/copy_generalisation/start_failures.py RUN_DIR --seeds 8,27 [--length 120]
        [--memory_size 128] [--sequences 64]

For each seed (its reported parameters) it draws `--sequences` fresh copy
sequences, and prints how many fail (any bit error), and for the first few
failing ones the first wrong output item, and where the read head is at the
delimiter and on the first output step (the rows of its three largest
weights) against where the first item was written (the write head's row at
step 0).
"""
import argparse

import jax
import numpy as np

from ntm_jax.models import api
from ntm_jax.runs import checkpoints


def _top(weights, k=3):
  return [(int(i), round(float(weights[i]), 2)) for i in np.argsort(-weights)[:k]]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("run_dir")
  parser.add_argument("--seeds", required=True, help="seed indices, comma-separated")
  parser.add_argument("--length", type=int, default=120)
  parser.add_argument("--memory_size", type=int, default=128)
  parser.add_argument("--sequences", type=int, default=64)
  parser.add_argument("--show", type=int, default=4, help="failing sequences to detail")
  args = parser.parse_args()
  config, states = checkpoints.load_run(args.run_dir)
  task, length = config.make_task(), args.length
  inputs, targets, mask = task.sample(jax.random.PRNGKey(1), args.sequences, length, length)
  for seed in (int(s) for s in args.seeds.split(",")):
    params = checkpoints.seed_params(states, seed)
    logits, trace = api.apply(params, inputs, config.model, memory_size=args.memory_size,
                              return_trace=True)
    wrong = (np.asarray(logits) > 0) != (np.asarray(targets) > 0.5)
    wrong = wrong & (np.asarray(mask)[..., None] > 0)
    per_sequence = wrong.sum(axis=(1, 2))
    read = np.asarray(trace["read_weights"])[:, :, 0]    # [B, T, N]: read head 0
    write = np.asarray(trace["write_weights"])[:, :, 0]
    failing = np.flatnonzero(per_sequence)
    print(f"seed {seed}: {per_sequence.mean():.1f} bit errors per sequence; "
          f"{len(failing)} of {args.sequences} sequences fail")
    for b in failing[:args.show]:
      items = np.flatnonzero(wrong[b].any(axis=-1)) - length - 1
      print(f"  sequence {b}: {per_sequence[b]} bit errors, first wrong item {items[0]}; "
            f"first item written at row {int(write[b, 0].argmax())}; read head at the "
            f"delimiter {_top(read[b, length])}, then {_top(read[b, length + 1])}")
    for b in np.flatnonzero(per_sequence == 0)[:1]:
      print(f"  a passing sequence ({b}): first item written at row "
            f"{int(write[b, 0].argmax())}; read head at the delimiter "
            f"{_top(read[b, length])}, then {_top(read[b, length + 1])}")


if __name__ == "__main__":
  main()
