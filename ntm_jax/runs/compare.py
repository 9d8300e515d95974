"""Comparing runs at equal training sequences (e.g. the NTM and the LSTM
baseline on one task), from their run directories alone.

    python -m experiments.compare runs/copy/ntm_run runs/copy/lstm_run
"""
import os

import numpy as np

import ntm_jax.runs.rundir as rundir


def _diverged_steps(run_dir: str) -> list:
  """Per seed, the step it diverged at (None: it did not), from summary.json;
  [] while the run has none (still training: no seed is known to diverge)."""
  summary = rundir.load_summary(run_dir) or {}
  return [s.get("diverged_step") for s in summary.get("seeds", [])]


def eval_curve(run_dir: str) -> list:
  """[(training sequences per seed, median eval cost in bits, median eval
  bit errors)] at every evaluation of the run. A seed that diverged is left
  out from its divergence on: its frozen parameters' evaluations mean
  nothing (as in summary.json's medians)."""
  config = rundir.saved_config(run_dir)
  diverged = _diverged_steps(run_dir)
  curve = []
  for row in rundir.load_metrics(run_dir):
    if "eval_loss" not in row:
      continue
    def median(name):
      values = np.array([np.nan if v is None else v for v in row[name]], float)
      for seed, step in enumerate(diverged[:len(values)]):
        if step is not None and row["step"] >= step:
          values[seed] = np.nan
      return float(np.nanmedian(values)) if np.isfinite(values).any() else None
    curve.append((row["step"] * config.train.batch_size, median("eval_loss"),
                  median("eval_bit_errors")))
  return curve


def check_run_dirs(run_dirs) -> None:
  """Raises ValueError (one line, naming the directory or file) unless every
  one is a run directory with a readable config.json and a metrics.jsonl."""
  if len(run_dirs) < 2:
    raise ValueError(f"compare needs at least 2 run directories, got {len(run_dirs)}")
  for run in run_dirs:
    if not os.path.isdir(run):
      raise ValueError(f"{run} is not a directory")
    rundir.saved_config(run)  # names config.json when it is missing or broken
    if not os.path.isfile(os.path.join(run, "metrics.jsonl")):
      raise ValueError(f"{run} has no metrics.jsonl (the run has not trained yet)")


def at_equal_sequences(run_dirs) -> dict:
  """Each run's median eval cost at the largest number of training
  sequences every run reached (its last evaluation at or below it).

  Returns {"sequences": n, "runs": [{"run", "task", "model", "param_count",
  "sequences", "median_eval_bits", "median_eval_bit_errors"}]}.
  """
  check_run_dirs(run_dirs)
  curves = {run: eval_curve(run) for run in run_dirs}
  empty = [run for run, curve in curves.items() if not curve]
  if empty:
    raise ValueError(f"no evaluations yet in {empty}")
  common = min(curve[-1][0] for curve in curves.values())
  rows = []
  for run, curve in curves.items():
    sequences, bits, errors = [point for point in curve if point[0] <= common][-1]
    summary = rundir.load_summary(run) or {}
    config = rundir.saved_config(run)
    rows.append({"run": run, "task": config.task, "model": config.model_kind,
                 "param_count": summary.get("aggregate", {}).get("param_count"),
                 "sequences": sequences, "median_eval_bits": bits,
                 "median_eval_bit_errors": errors})
  return {"sequences": common, "runs": rows}


def format_comparison(result: dict) -> str:
  lines = [f"median over seeds at {result['sequences']:,} training sequences per seed "
           "(fresh sequences of the training lengths):",
           f"{'model':<6} {'params':>9} {'sequences':>10} {'bits':>9} {'bit errors':>10}  run"]
  for r in result["runs"]:
    params = "?" if r["param_count"] is None else f"{r['param_count']:,}"
    lines.append(f"{r['model']:<6} {params:>9} {r['sequences']:>10,} "
                 f"{r['median_eval_bits']:>9.2f} {r['median_eval_bit_errors']:>10.2f}  {r['run']}")
  return "\n".join(lines)
