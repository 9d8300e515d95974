"""One chunk of training: its compiled program over every seed
(`make_chunk`), the metrics.jsonl rows it leaves (`chunk_rows`), and whether
it ends with a checkpoint (`checkpoint_due`)."""
import dataclasses
import functools
from typing import Optional

import numpy as np

from ntm_jax import training
from ntm_jax.config import TrainConfig
import ntm_jax.runs.summary as summary_lib


def make_chunk(model_config, train_config: TrainConfig, task, mesh=None,
               steps: Optional[int] = None, optimizer=None):
  """The compiled chunk the engine runs: `steps` training steps (None:
  train_config.eval_every) of every seed, then an evaluation.

  Call it as chunk(states, np.int32(first_step)): states stacked over the
  seeds (placed on `mesh`'s "seeds" axis, or mesh None: one device), the
  first step shared by every seed. It returns (states, step metrics {name:
  [seeds, steps]}, eval metrics {name: [seeds]}); see
  `training.train_chunk`, which it vmaps over the seeds.
  """
  steps = train_config.eval_every if steps is None else steps
  return training.make_seed_parallel(functools.partial(
      training.train_chunk, task=task, model_config=model_config,
      config=dataclasses.replace(train_config, eval_every=steps), optimizer=optimizer), mesh,
      model_config=model_config, in_axes=(0, None))  # the start step: shared


def chunk_rows(first_step: int, seeds: int, step_metrics: dict, eval_metrics: dict,
               converged_step, diverged) -> list:
  """The metrics.jsonl rows of one chunk from its gathered outputs.

  Args:
    first_step: the step the chunk started from (its rows are first_step + 1
      onwards).
    seeds: the real seeds; the padding after them is dropped.
    step_metrics: {name: [padded seeds, steps]}, "train_length" among them.
    eval_metrics: {name: [padded seeds]}, the evaluation ending the chunk.
    converged_step, diverged: [seeds] after the chunk.

  Returns:
    One dict per step: "step", each step metric over the seeds, the step's
    "train_length"; the last adds the evaluation and the counts "converged"
    and "diverged".
  """
  rows = []
  for k in range(step_metrics["train_length"].shape[1]):
    row = {"step": first_step + k + 1}
    row.update({name: summary_lib.as_list(values[:seeds, k])
                for name, values in step_metrics.items() if name != "train_length"})
    row["train_length"] = int(step_metrics["train_length"][0, k])
    rows.append(row)
  rows[-1].update({name: summary_lib.as_list(v[:seeds]) for name, v in eval_metrics.items()})
  rows[-1]["converged"] = int(np.sum(converged_step >= 0))
  rows[-1]["diverged"] = int(np.sum(diverged))
  return rows


def checkpoint_due(step: int, steps_run: int, every: int, total: int) -> bool:
  """Whether the chunk that ran `steps_run` steps up to `step` ends with a
  checkpoint: it reaches or crosses a multiple of `every`, or the run's last
  step (`total`)."""
  return step // every > (step - steps_run) // every or step >= total
