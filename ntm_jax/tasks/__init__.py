"""Algorithmic tasks as pure JAX samplers.

Every task has `input_size`, `output_size`, `min_length`,
`memory_needed(length)`, `sequence_steps(max_length)` and
`sample(rng, batch_size, length, max_length) -> (inputs, targets, mask)`;
`length` (the task's size: vectors, items, bits or characters) may be a
traced array, so one compiled program serves all sizes up to max_length.
Optional: `test_variants()` (extra generalisation tests), `optimal_bits`
(the optimal predictor's cost) with `converge_metric = "excess_bits"`.
"""
from ntm_jax.tasks.associative_recall import AssociativeRecallTask
from ntm_jax.tasks.copy import CopyTask
from ntm_jax.tasks.dyck import DyckTask
from ntm_jax.tasks.ngrams import NGramsTask
from ntm_jax.tasks.priority_sort import PrioritySortTask
from ntm_jax.tasks.repeat_copy import RepeatCopyTask

TASKS = {"copy": CopyTask, "repeat_copy": RepeatCopyTask,
         "associative_recall": AssociativeRecallTask, "ngrams": NGramsTask,
         "priority_sort": PrioritySortTask, "dyck": DyckTask}


def make_task(name: str, **kwargs):
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
  try:
    return TASKS[name](**kwargs)
  except TypeError as error:
    raise ValueError(f"bad options for task {name!r}: {error}") from None


__all__ = ["AssociativeRecallTask", "CopyTask", "DyckTask", "NGramsTask",
           "PrioritySortTask", "RepeatCopyTask", "TASKS", "make_task"]
