"""Algorithmic tasks as pure JAX samplers.

Every task has `input_size`, `output_size`, `sequence_steps(max_length)` and
`sample(rng, batch_size, length, max_length) -> (inputs, targets, mask)`;
`length` may be a traced array, so one compiled program serves all lengths.
"""
from ntm_jax.tasks.copy import CopyTask

TASKS = {"copy": CopyTask}


def make_task(name: str, **kwargs):
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
  try:
    return TASKS[name](**kwargs)
  except TypeError as error:
    raise ValueError(f"bad options for task {name!r}: {error}") from None


__all__ = ["CopyTask", "TASKS", "make_task"]
