"""Each seed's strategy statistics at the end of a run, for summary.json.

A task opts in with a method `strategy_statistics(params, model_config,
train_length=, long_length=, memory_size=, sequences=) -> {name: float}`
(the copy task's: `ntm_jax.tasks.copy`); its keys end in "_train" (probed at
the training length) or f"_L{long_length}". Nothing here knows a task's
statistics: a new task adds its own through its class, without engine edits.
`ntm_jax.analysis.strategy` asks how well they predict a long test's failure.
"""
import math
from typing import Optional

import jax

from ntm_jax import models

# The long length probed (the copy task's generalisation test).
LONG_LENGTH = 120
# Probe sequences per length: a few suffice, a statistic is a mean over steps.
PROBE_SEQUENCES = 8


def probe_settings(config, task) -> dict:
  """The hook's keyword arguments for a run's `ExperimentConfig`: the
  longest training length, LONG_LENGTH, and the run's test memory (else its
  training rows, else 128) raised to what LONG_LENGTH needs."""
  rows = models.memory_size_for(config.model, config.train.test_memory_size) or 128
  return {"train_length": config.train.max_length, "long_length": LONG_LENGTH,
          "memory_size": max(rows, task.memory_needed(LONG_LENGTH)),
          "sequences": PROBE_SEQUENCES}


def _json_number(x) -> Optional[float]:
  x = float(x)
  return round(x, 5) if math.isfinite(x) else None


def seed_statistics(config, best_params, task) -> Optional[list]:
  """Every seed's strategy statistics on its reported (best) parameters.

  Args:
    config: the run's ExperimentConfig.
    best_params: the stacked parameters, seeds first (host or device
      arrays; padding seeds past config.train.seeds are ignored).
    task: the task object.

  Returns:
    None if the task has no `strategy_statistics`; else a list over the
    config's seeds of {name: float, or None where not finite}, each {} for a
    model without heads.
  """
  hook = getattr(task, "strategy_statistics", None)
  if hook is None:
    return None
  settings = probe_settings(config, task)
  return [{name: _json_number(value) for name, value in
           hook(jax.tree_util.tree_map(lambda x: x[i], best_params), config.model,
                **settings).items()}
          for i in range(config.train.seeds)]


def add_to_summary(summary: dict, statistics: Optional[list]) -> dict:
  """summary with each seed's statistics under its entry's "strategy"."""
  if statistics is not None:
    for seed, stats in zip(summary["seeds"], statistics):
      seed["strategy"] = stats
  return summary
