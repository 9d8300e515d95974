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
import math
from typing import Optional

import numpy as np

from ntm_jax import models
from ntm_jax.runs import checkpoints

# The long length probed, and whose test bit errors say whether a seed fails.
LONG_LENGTH = 120
# Probe sequences per length: a few suffice, a statistic is a mean over steps.
PROBE_SEQUENCES = 8
# A seed fails the long length at >= 1 bit error per sequence (the
# project's "seeds under 1 bit error" count).
FAIL_BIT_ERRORS = 1.0


def probe_settings(config, task) -> dict:
  """The hook's keyword arguments for a run's `ExperimentConfig`: the
  longest training length, LONG_LENGTH, and the run's test memory (else its
  training rows, else 128) raised to what LONG_LENGTH needs."""
  memory_size = models.memory_size_for(config.model, config.train.test_memory_size) or 128
  return {"train_length": config.train.max_length, "long_length": LONG_LENGTH,
          "memory_size": max(memory_size, task.memory_needed(LONG_LENGTH)),
          "sequences": PROBE_SEQUENCES}


def _json_number(x) -> Optional[float]:
  x = float(x)
  return round(x, 5) if math.isfinite(x) else None


def seed_statistics(config, states, task=None) -> Optional[list]:
  """Every seed's strategy statistics on its reported (best) parameters.

  What the engine calls at the end of a run; each dict goes into that
  seed's entry of summary.json.

  Args:
    config: the run's ExperimentConfig.
    states: the stacked TrainState, seeds first (host or device arrays, no
      padding seeds: `checkpoints.load_run`'s, or the engine's final ones).
    task: the task object (default: `config.make_task()`).

  Returns:
    None if the task has no `strategy_statistics`; else a list over the
    config's seeds of {name: float, or None where not finite}, each {} for a
    model without heads.
  """
  task = config.make_task() if task is None else task
  hook = getattr(task, "strategy_statistics", None)
  if hook is None:
    return None
  settings = probe_settings(config, task)
  return [{name: _json_number(value) for name, value in
           hook(checkpoints.seed_params(states, i), config.model, **settings).items()}
          for i in range(config.train.seeds)]


def run_statistics(run_dir: str) -> dict:
  """{seed index: statistics} of a finished run directory (its summary.json
  says which parameters were reported: each seed's best, which the latest
  checkpoint holds). ValueError (one line) for a run without summary.json
  or checkpoints, or whose task has no statistics."""
  config = checkpoints.load_config(run_dir)
  if checkpoints.load_summary(run_dir) is None:
    raise ValueError(f"{run_dir} has not finished (no summary.json)")
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
  fails = f"fails_L{LONG_LENGTH}"
  names = sorted({name for r in records for name in r["statistics"] if name.endswith(suffix)})
  out = {}
  for name in names:
    rows = [(r["statistics"][name], r[fails]) for r in records
            if r[fails] is not None and r["statistics"].get(name) is not None]
    scores = np.array([s for s, _ in rows], float)
    positive = np.array([f for _, f in rows], bool)
    out[name] = {"n": len(rows), "failing": int(positive.sum()),
                 "auc": _json_number(roc_auc(scores, positive)),
                 **best_threshold(scores, positive)}
  return out
