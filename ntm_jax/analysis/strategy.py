"""How each seed solved its task: strategy statistics per seed, and how well
each one tells the seeds that fail a long test from those that pass.

    stats = strategy.seed_statistics(config, states)      # [one dict per seed] or None
    stats = strategy.run_statistics("runs/copy/<ts>")     # {seed index: dict}

A task opts in with a method `strategy_statistics(params, model_config,
train_length=, long_length=, memory_size=) -> {name: float}` (the copy
task's: `ntm_jax.tasks.copy`); its keys end in "_train" (probed at the
training length) or f"_L{long_length}". Nothing here knows a task's
statistics: a new task adds its own through its class.
"""
from typing import Optional

import numpy as np

from ntm_jax.runs import checkpoints
from ntm_jax.runs.seed_statistics import (  # noqa: F401  (re-exported)
    LONG_LENGTH, PROBE_SEQUENCES, _json_number, probe_settings)
from ntm_jax.runs import seed_statistics as _seed_statistics

# A seed fails the long length at >= 1 bit error per sequence (the
# project's "seeds under 1 bit error" count).
FAIL_BIT_ERRORS = 1.0


def seed_statistics(config, states, task=None) -> Optional[list]:
  """`ntm_jax.runs.seed_statistics.seed_statistics` of stacked TrainStates
  (`checkpoints.load_run`'s, or the engine's final ones), task defaulting
  to `config.make_task()`."""
  task = config.make_task() if task is None else task
  if not hasattr(task, "strategy_statistics"):
    return None
  return _seed_statistics.seed_statistics(config, states.best_params, task)


def run_statistics(run_dir: str) -> dict:
  """{seed index: statistics} of a finished run directory: summary.json's
  per-seed "strategy" where the run recorded it, else probed from the
  latest checkpoint (each seed's best parameters, which summary.json
  reports). ValueError (one line) for a run without summary.json or
  checkpoints, or whose task has no statistics."""
  config = checkpoints.load_config(run_dir)
  summary = checkpoints.load_summary(run_dir)
  if summary is None:
    raise ValueError(f"{run_dir} has not finished (no summary.json)")
  if all("strategy" in seed for seed in summary["seeds"]):
    return {i: seed["strategy"] for i, seed in enumerate(summary["seeds"])}
  _, states = checkpoints.load_run(run_dir)
  stats = seed_statistics(config, states)
  if stats is None:
    raise ValueError(f"task {config.task!r} has no strategy_statistics")
  return dict(enumerate(stats))


def roc_auc(scores, positive) -> float:
  """Area under the ROC curve of `scores` [n] as a score for `positive` [n]
  (bool): the probability that a random positive scores above a random
  negative, ties counted half. 1: every positive above every negative; 0:
  every one below (the statistic separates them the other way); 0.5: no
  better than chance. NaN without both classes."""
  scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
  pos, neg = scores[positive], scores[~positive]
  if not pos.size or not neg.size:
    return float("nan")
  above = (pos[:, None] > neg[None, :]).sum()
  ties = (pos[:, None] == neg[None, :]).sum()
  return float((above + 0.5 * ties) / (pos.size * neg.size))


def best_threshold(scores, positive) -> dict:
  """The single cut of `scores` [n] that best predicts `positive` [n]
  (bool): the highest balanced accuracy (mean of the rates of positives
  and of negatives called right), then the higher accuracy, then the lower
  threshold. Cuts lie midway between distinct scores, so no score sits on
  one; "above" predicts positive for scores > threshold, "below" for <.

  Returns:
    {"threshold", "direction": "above" | "below", "tp", "fp", "tn", "fn",
     "balanced_accuracy"}; the threshold is None with fewer than two
    distinct scores or without both classes.
  """
  scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
  values = np.unique(scores)
  best = {"threshold": None, "direction": "above", "tp": int(positive.sum()),
          "fp": int((~positive).sum()), "tn": 0, "fn": 0, "balanced_accuracy": 0.5}
  if values.size < 2 or positive.all() or not positive.any():
    return best
  best_key = None
  for cut in (values[1:] + values[:-1]) / 2:
    for direction in ("above", "below"):
      called = scores > cut if direction == "above" else scores < cut
      tp, fp = int(np.sum(called & positive)), int(np.sum(called & ~positive))
      fn, tn = int(np.sum(~called & positive)), int(np.sum(~called & ~positive))
      balanced = (tp / (tp + fn) + tn / (tn + fp)) / 2
      key = (balanced, tp + tn, -cut)
      if best_key is None or key > best_key:
        best_key = key
        best = {"threshold": float(cut), "direction": direction, "tp": tp, "fp": fp,
                "tn": tn, "fn": fn, "balanced_accuracy": float(balanced)}
  return best


def seed_records(run_dir: str, stats: dict, summary: dict) -> list:
  """One record per seed: {"run", "seed_index", "seed", "bit_errors_L<long>"
  (summary.json's test at LONG_LENGTH, None if untested or diverged),
  "fails_L<long>" (None when unknown), "statistics"}."""
  key = f"L{LONG_LENGTH}"
  records = []
  for i, seed in enumerate(summary["seeds"]):
    errors = None if seed.get("diverged") else seed["bit_errors_by_length"].get(
        str(LONG_LENGTH))
    records.append({"run": run_dir, "seed_index": i, "seed": seed.get("seed"),
                    f"bit_errors_{key}": errors,
                    f"fails_{key}": None if errors is None else errors >= FAIL_BIT_ERRORS,
                    "statistics": stats.get(i, {})})
  return records


def separation(records: list, suffix: str = "_train") -> dict:
  """For every statistic whose name ends in `suffix`: how well it separates
  the seeds of `records` (`seed_records`, pooled over runs) that fail
  LONG_LENGTH from those that pass, counting only seeds with a known
  outcome and a finite value.

  Returns:
    {name: {"n": seeds counted, "failing": how many of them fail, "auc":
     `roc_auc` with failing as positive, **`best_threshold`}}.
  """
  names = sorted({name for r in records for name in r["statistics"] if name.endswith(suffix)})
  out = {}
  for name in names:
    scores, positive = _known(records, name)
    out[name] = {"n": len(scores), "failing": int(positive.sum()),
                 "auc": _json_number(roc_auc(scores, positive)),
                 **best_threshold(scores, positive)}
  return out


def rule_counts(records: list, name: str, direction: str, threshold: float) -> dict:
  """A rule fixed beforehand ("fail if statistic `name` is `direction`
  ("above" or "below") `threshold`"), applied to the seeds of `records`
  with a known outcome and a finite value: a held-out check of a cut that
  `best_threshold` chose on other runs.

  Returns:
    {"name", "direction", "threshold", "n", "flagged", "tp" (flagged and
     failing), "fp", "tn", "fn"}.
  """
  scores, positive = _known(records, name)
  called = scores > threshold if direction == "above" else scores < threshold
  return {"name": name, "direction": direction, "threshold": float(threshold),
          "n": len(scores), "flagged": int(called.sum()),
          "tp": int(np.sum(called & positive)), "fp": int(np.sum(called & ~positive)),
          "tn": int(np.sum(~called & ~positive)), "fn": int(np.sum(~called & positive))}


def _known(records: list, name: str):
  """(scores [n] float, failing [n] bool) of statistic `name` over the seeds
  of `records` with a known outcome and a recorded value."""
  fails = f"fails_L{LONG_LENGTH}"
  rows = [(r["statistics"][name], r[fails]) for r in records
          if r[fails] is not None and r["statistics"].get(name) is not None]
  return (np.array([s for s, _ in rows], float).reshape(-1),
          np.array([f for _, f in rows], bool).reshape(-1))
