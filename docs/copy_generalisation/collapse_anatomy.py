"""What happens to a converged copy seed before it collapses.

    PYTHONPATH=. python docs/copy_generalisation/collapse_anatomy.py RUN_DIR --seeds 0,20,26,1

For each seed, per window of `--window` training steps: how many steps had
more than 1 bit error per sequence on their training batch, and the median
gradient norm (both from metrics.jsonl); then the largest absolute value of
each parameter array, final against reported (best) parameters.
"""
import argparse
import json
import os

import numpy as np


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("run_dir")
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--window", type=int, default=250)
  parser.add_argument("--steps", type=int, default=9000, help="steps shown from the start")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  with open(os.path.join(args.run_dir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  steps = min(args.steps, len(records)) // args.window * args.window
  errors = np.array([r["bit_errors"] for r in records[:steps]])
  norms = np.array([r["grad_norm"] for r in records[:steps]])
  with open(os.path.join(args.run_dir, "config.json")) as f:
    base = json.load(f)["train"]["seed"]
  print(f"per {args.window} steps, from step 1 to {steps}")
  for seed in seeds:
    i = seed - base
    failing = (errors[:, i] > 1).reshape(-1, args.window).sum(1)
    median = np.median(norms[:, i].reshape(-1, args.window), 1)
    print(f"seed {seed}: steps with > 1 bit error: " + " ".join(str(v) for v in failing))
    print(f"{'':>8}median gradient norm: " + " ".join(f"{v:.2g}" for v in median))

  import jax
  from ntm_jax.runs import checkpoints
  _, states = checkpoints.load_run(args.run_dir)
  print("largest |parameter| per array, final / reported")
  for seed in seeds:
    final = jax.tree_util.tree_leaves_with_path(checkpoints.seed_params(states, seed - base, False))
    best = jax.tree_util.tree_leaves(checkpoints.seed_params(states, seed - base, True))
    print(f"seed {seed}: " + ", ".join(
        f"{jax.tree_util.keystr(path).split('[')[-2].strip(chr(39)+']')}."
        f"{jax.tree_util.keystr(path).split('[')[-1].strip(chr(39)+']')} "
        f"{np.abs(np.asarray(x)).max():.1f}/{np.abs(np.asarray(b)).max():.1f}"
        for (path, x), b in zip(final, best)))


if __name__ == "__main__":
  main()
