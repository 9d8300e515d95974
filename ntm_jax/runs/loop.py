"""The chunk loop: compiled chunks until the run's last step, each one's
rows, report and checkpoint, and a clean stop on SIGTERM / SIGINT (`train`)."""
import contextlib
import dataclasses
import time
from typing import NamedTuple

import numpy as np

import ntm_jax.runs.checkpoints as checkpoints
import ntm_jax.runs.faults as faults
import ntm_jax.runs.ownership as ownership
import ntm_jax.runs.progress as progress_bar
import ntm_jax.runs.summary as summary_lib
from ntm_jax.runs.chunks import checkpoint_due, chunk_rows, make_chunk
from ntm_jax.runs.plan import RunPlan
from ntm_jax.runs.start import Position, Started
from ntm_jax.training import distributed


@dataclasses.dataclass
class Clock:
  """Seconds spent in chunks: compiling (the first call of each program,
  which runs one chunk too) and training (every later call)."""
  compile_s: float = 0.0
  train_s: float = 0.0


class _Chunk(NamedTuple):
  """What the loop needs of a chunk just run."""
  steps: int
  last_row: dict
  median_eval_loss: float
  converged_step: np.ndarray  # [seeds]
  diverged: np.ndarray        # [seeds]


def train(plan: RunPlan, started: Started) -> tuple:
  """Trains from `started` to the plan's last step, or until every seed
  converged or diverged with stop_when_converged; returns (Position, Clock).

  Whatever ends the loop, the latest completed chunk's states are saved
  before it returns or raises, and the checkpoint manager and metrics file
  are closed.

  Raises:
    ownership.RunInterrupted: SIGTERM or SIGINT arrived; the chunk under
      way was finished and saved first (a second signal stops at once).
    faults.RunFailed: (one line) a checkpoint save failed (training stops
      at that step; the earlier checkpoints are intact), or XLA ran out of
      memory (the latest completed chunk is saved first).
  """
  t = plan.config.train
  programs, clock = {}, Clock()
  bar = progress_bar.Progress(t.steps, started.start.step, plan.progress)
  at, save_failed = started.start, False
  stop = ownership.StopOnSignal(plan.log, plan.out_dir)
  try:
    with stop:
      while at.step < t.steps:
        # `at` is replaced in one assignment: an interruption anywhere leaves
        # the states and their step consistent for the save on the way out.
        at, chunk = _run_chunk(plan, at, programs, clock, started.metrics)
        if _after_chunk(plan, at, chunk, bar, started.manager) or stop.requested():
          break
  except ownership.RunInterrupted as interrupted:  # a second signal: stop at once
    interrupted.step = at.step
    raise
  except faults.SaveFailed:
    save_failed = True  # saving again would only fail again
    raise
  finally:
    bar.close()
    started.metrics.close()
    _save_last(started, at, retry=not save_failed)
  if stop.signum is not None:
    raise ownership.RunInterrupted(stop.signum, at.step, plan.out_dir)
  return at, clock


def _save_last(started: Started, at: Position, retry: bool) -> None:
  """Whatever ended the loop, the latest completed state on disk (unless
  `retry` is off: its save just failed), and the checkpoint manager closed."""
  try:
    if retry and at.step > started.start.step and started.manager.latest_step() != at.step:
      checkpoints.save(started.manager, at.step, at.states)
  finally:
    # After a failed save, closing must not hide that failure behind its own.
    with contextlib.suppress(Exception) if not retry else contextlib.nullcontext():
      started.manager.close()


def _run_chunk(plan: RunPlan, at: Position, programs: dict, clock: Clock, metrics) -> tuple:
  """Runs the chunk from `at`, writes its rows and reports it to the
  loggers; returns (the Position after it, _Chunk).

  programs: steps per chunk -> its compiled program (eval_every, and a
  shorter last chunk when steps is not a multiple of it), filled as needed.
  """
  t = plan.config.train
  began = time.perf_counter()
  n = min(t.eval_every, t.steps - at.step)
  first_call = n not in programs
  # XLA's out-of-memory error is pages long: it ends the run in one line.
  with faults.out_of_memory_ends_the_run(
      f"{'compiling and running' if first_call else 'running'} the training chunk "
      f"from step {at.step}"):
    if first_call:
      programs[n] = make_chunk(plan.config.model, t, plan.task, plan.mesh, n, plan.optimizer)
    new_states, step_metrics, eval_metrics = programs[n](at.states, np.int32(at.step))
    # (the chunk runs asynchronously: its failure may surface here)
    step_metrics, eval_metrics, flags = distributed.gather_seeds(
        (step_metrics, eval_metrics, (new_states.converged_step, new_states.diverged)))
  elapsed = time.perf_counter() - began
  if first_call:
    clock.compile_s += elapsed  # the first call compiles (and runs one chunk)
  else:
    clock.train_s += elapsed
  converged_step, diverged = (x[:t.seeds] for x in flags)
  rows = chunk_rows(at.step, t.seeds, step_metrics, eval_metrics, converged_step, diverged)
  metrics.write(rows)
  plan.loggers.log_chunk(at.step + n, *summary_lib.chunk_report(rows[-1], elapsed, n, diverged))
  median_loss = float(np.nanmedian(eval_metrics["eval_loss"][:t.seeds]))
  return (Position(at.step + n, new_states),
          _Chunk(n, rows[-1], median_loss, converged_step, diverged))


def _after_chunk(plan: RunPlan, at: Position, chunk: _Chunk, bar, manager) -> bool:
  """The bar, the checkpoint if one is due; whether to stop because every
  seed converged or diverged (with stop_when_converged)."""
  t = plan.config.train
  bar.update(chunk.steps, chunk.median_eval_loss, chunk.last_row["converged"],
             chunk.last_row["diverged"], t.seeds)
  if checkpoint_due(at.step, chunk.steps, plan.config.checkpoint_every, t.steps):
    checkpoints.save(manager, at.step, at.states)
  if t.stop_when_converged and np.all((chunk.converged_step >= 0) | chunk.diverged):
    plan.log(f"every seed converged or diverged by step {at.step}: stopping")
    return True
  return False
