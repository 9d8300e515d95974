"""The start of a run whose directory it owns: the first states (fresh,
given, or the latest usable checkpoint's), config.json with its provenance,
the loggers' start, and the metrics file the chunk loop appends to
(`start_or_resume`)."""
import dataclasses
import os
from typing import Any

import jax

from ntm_jax import training
import ntm_jax.runs.checkpoints as checkpoints
import ntm_jax.runs.provenance as provenance
import ntm_jax.runs.rundir as rundir
from ntm_jax.runs.plan import RunPlan
from ntm_jax.training import distributed


@dataclasses.dataclass(frozen=True)
class Position:
  """Where training stands: the stacked `states` after `step` steps. One
  object, replaced whole, so an interruption never sees one without the other."""
  step: int
  states: Any


@dataclasses.dataclass(frozen=True)
class Started:
  """A started run: where it starts, its orbax checkpoint manager and its
  metrics.jsonl writer (the chunk loop closes both; its `gaps` are the steps
  the file lacks before the start)."""
  start: Position
  manager: Any
  metrics: Any


def start_or_resume(plan: RunPlan, initial_states=None) -> Started:
  """Starts `plan` in its (claimed) directory; a resumed run from its latest
  usable checkpoint. Nothing is written until a resume's restore has worked.

  initial_states: optional stacked TrainStates to start from instead of
  fresh ones (placed on the plan's mesh here).

  Raises:
    ValueError: no usable checkpoint, or one past the run's steps; the
      directory is unchanged.
  """
  states = (initial_states if initial_states is not None
            else training.init_states(plan.config.model, plan.config.train,
                                      plan.padded_seeds, plan.optimizer))
  start = Position(0, distributed.put_seeds(states, plan.seed_sharding))
  manager = checkpoints.manager(plan.out_dir)
  if plan.resume:
    start = _resumed(plan, manager, start)
    if plan.main:  # only now: a refused resume leaves the directory as it was
      _remove_unfinished_saves(plan)
  _announce(plan)
  metrics = (rundir.MetricsFile(os.path.join(plan.out_dir, "metrics.jsonl"), start.step)
             if plan.main else rundir.NoMetricsFile())
  _warn_of_a_cut(plan, metrics.gaps, start.step)
  return Started(start, manager, metrics)


def _remove_unfinished_saves(plan: RunPlan) -> None:
  """The folders of saves that never finished (a full disk, a kill), which
  orbax would leave forever; this process owns the directory, so none is
  being written."""
  removed = checkpoints.remove_unfinished(plan.out_dir)
  if removed:
    plan.log(f"removed {len(removed)} unfinished checkpoint folder(s) a failed save left "
             f"in {checkpoints.directory(plan.out_dir)}: {', '.join(removed)}")


def _warn_of_a_cut(plan: RunPlan, gaps: list, step: int) -> None:
  """One line when metrics.jsonl ends before the checkpoint resumed from
  (the file was cut by a crash): those steps stay missing from the curves.
  Older gaps were said at their own resume; summary.json lists them all."""
  if gaps and gaps[-1][1] == step:
    first, last = gaps[-1]
    plan.log(f"warning: metrics.jsonl has no rows for steps {first}-{last} (cut before "
             f"the checkpoint at step {step}); those steps' evaluations are missing "
             "from the learning curves")


def _resumed(plan: RunPlan, manager, fresh: Position) -> Position:
  """Where a resumed run starts: its latest usable checkpoint, or `fresh`
  when none was written yet; the manager is closed if that fails."""
  t = plan.config.train
  try:
    step, restored = checkpoints.restore(manager, fresh.states, t.seeds, plan.log)
  except ValueError:
    manager.close()
    raise
  if step is None:
    plan.log(f"{plan.out_dir} has no checkpoint yet: starting from step 0")
    return fresh
  if t.steps < step:
    manager.close()
    raise ValueError(f"steps {t.steps} is below the step of the checkpoint "
                     f"to resume from ({step})")
  start = Position(step, distributed.put_seeds(restored, plan.seed_sharding))
  plan.log(f"resumed from step {step}")
  for unreadable in [s for s in manager.all_steps() if s > step]:
    manager.delete(unreadable)  # else orbax would keep it over the new save
  return start


def _announce(plan: RunPlan) -> None:
  """config.json (with provenance), the loggers' start, and a line on how
  the seeds lie over the devices."""
  config, mesh = plan.config, plan.mesh
  per_device = plan.padded_seeds // mesh.size
  group = training.seeds_per_group(
      per_device, training.default_group_target(jax.default_backend(), config.model))
  run_json = provenance.config_json(config, plan.out_dir, mesh.size, group)
  if plan.main:
    rundir.write_json(rundir.config_path(plan.out_dir), run_json)
  plan.loggers.start(run_json, plan.out_dir)  # W&B's config: config.json, provenance too
  seeds = config.train.seeds
  plan.log(f"{seeds} seeds ({plan.padded_seeds - seeds} padding) over {mesh.size} "
           f"{jax.default_backend()} device(s)"
           + (f" on {jax.process_count()} hosts" if jax.process_count() > 1 else "")
           + f": {per_device} per device"
           + (f", {group} at a time" if group < per_device else ""))
