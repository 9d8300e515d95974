"""RESULTS.md's table of per-sequence copy failures: one row per committed
run (a results/ key, or every run of a folder) that has a `failures_L<length>.json` beside its
summary (written by `python -m experiments.copy_failures`).

    <!-- report: failures copy/default copy/paper_factors -->

The block lists the runs sorted by name, each with the test of its
summary.json (seeds under 1 bit error on its test sequences at the longest
length) beside the same count on the failure file's sequences, and how
often the seeds fail a sequence there.
"""
import glob
import json
import os

import numpy as np


def _failures(run_dir: str):
  """The run's failures file (the last by name if several), or None."""
  paths = sorted(glob.glob(os.path.join(run_dir, "failures_L*.json")))
  if not paths:
    return None
  with open(paths[-1]) as f:
    return json.load(f)


def row(name: str, summary: dict, failures: dict) -> str:
  seeds = failures["seeds"]
  per_seed = [s["failed"] / failures["sequences"] for s in seeds]
  causes = {c: sum(s["causes"][c] for s in seeds) for c in seeds[0]["causes"]}
  early = sum(s["first_step_third"]["early"] for s in seeds)
  failed = sum(s["failed"] for s in seeds)
  under = summary["aggregate"]["seeds_under_1_bit_error_by_length"]
  return (f"| {name} | {under[list(under)[-1]]}/{len(seeds)} | "
          f"{sum(s['bit_errors'] < 1 for s in seeds)}/{len(seeds)} | "
          f"{sum(s['failed'] == 0 for s in seeds)} | {100 * np.median(per_seed):.2f}% | "
          f"{failed:,} | {early:,} | "
          + " / ".join(f"{causes[c]:,}" for c in ("overwritten", "misplaced", "blurred"))
          + " |")


def _run_dirs(keys, results_dir: str) -> list:
  """(name, run directory) of every key: a run, or a folder of runs."""
  out = []
  for key in keys:
    path = os.path.join(results_dir, key)
    if os.path.isfile(os.path.join(path, "summary.json")):
      out.append((key.split("/")[-1], path))
    elif os.path.isdir(path):
      out += [(name, os.path.join(path, name)) for name in sorted(os.listdir(path))]
    else:
      raise ValueError(f"RESULTS.md names {key!r}, which is not under {results_dir}")
  return out


def render_failures(keys, results_dir: str) -> str:
  """The block for `keys` (runs or folders under results_dir)."""
  rows, settings = [], None
  for name, run_dir in _run_dirs(keys, results_dir):
    failures = _failures(run_dir)
    if failures is None:
      continue
    with open(os.path.join(run_dir, "summary.json")) as f:
      summary = json.load(f)
    settings = settings or failures
    if any(failures[k] != settings[k] for k in ("length", "sequences", "memory_size")):
      raise ValueError(f"{run_dir}'s failures file tests other sequences than the "
                       "first run's: one table compares one test")
    rows.append(row(name, summary, failures))
  if not rows:
    raise ValueError(f"no run of {' '.join(keys)} has a failures file")
  return "\n".join([
      f"On the same {settings['sequences']} fresh sequences of length {settings['length']} "
      f"per seed, memory {settings['memory_size']}:", "",
      "| run | under 1 bit error (summary's test) | under 1 bit error (these sequences) | "
      "seeds failing none | median seed's failed sequences | failed sequences | "
      "first error in the first third | overwritten / misplaced / blurred |",
      "| --- | --- | --- | --- | --- | --- | --- | --- |"] + rows)
