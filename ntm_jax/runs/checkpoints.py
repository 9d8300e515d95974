"""A run directory's checkpoints (orbax): the one place managers are built,
saved to, restored from and read back.

    config, states = ntm_jax.runs.checkpoints.load_run("runs/copy/<ts>")
    params = ntm_jax.runs.checkpoints.seed_params(states, index)   # that seed's best params

The checkpoint is restored onto this process's first local device, whatever
device layout wrote it (a run that sharded its seeds over 2 devices loads on
a 1-device machine and vice versa); see `load_run`.
"""
import contextlib
import dataclasses
import gc
import glob
import logging
import os
import shutil
import sys
from typing import Optional

import jax
import numpy as np

import ntm_jax.runs.faults as faults
import ntm_jax.runs.rundir as rundir

load_config = rundir.saved_config
load_summary = rundir.load_summary
load_metrics = rundir.load_metrics


def directory(out_dir: str) -> str:
  return os.path.abspath(os.path.join(out_dir, "checkpoints"))


def has_checkpoints(out_dir: str) -> bool:
  path = directory(out_dir)
  return os.path.isdir(path) and bool(os.listdir(path))


def manager(out_dir: str, create: bool = True):
  """The run's orbax CheckpointManager: the latest 2 checkpoints kept."""
  import orbax.checkpoint as ocp  # heavy import, only when running
  return ocp.CheckpointManager(
      directory(out_dir), item_handlers=ocp.StandardCheckpointHandler(),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=create))


def _stored(states) -> dict:
  """The TrainState's fields as they are stored: a dict without the fields
  that are None (an optional part that is off, such as `average_params`), so
  runs written before a field was added restore unchanged."""
  return {field.name: getattr(states, field.name) for field in dataclasses.fields(states)
          if getattr(states, field.name) is not None}


def save(checkpoint_manager, step: int, states) -> None:
  """Saves `states` as the checkpoint of `step` and waits until it is on disk.

  orbax writes in a background thread and keeps its error for a later call;
  waiting here (a host sync at checkpoint time only) makes a failed save end
  the run at this step, before it trains on past a checkpoint it lacks.

  Raises:
    faults.SaveFailed: (one line) the save failed; the earlier checkpoints
      are intact (orbax deletes old ones only after a save completes).
  """
  import orbax.checkpoint as ocp
  previous = checkpoint_manager.latest_step()  # complete: every save is waited for
  # A failed write's other TensorStore futures finish on threads, into
  # orbax's closed event loop, each printing a traceback ("Event loop is
  # closed") through sys.unraisablehook: some while the save is failing,
  # some later, until the process exits. The run says the failure in one
  # line, so those reports are dropped from the start of the save and, after
  # a failure, for good; any other report still reaches the hook.
  hook = sys.unraisablehook
  sys.unraisablehook = _dropping_failed_write_reports(hook)
  try:
    with _quiet_orbax_errors():
      checkpoint_manager.save(step, args=ocp.args.StandardSave(_stored(states)))
      checkpoint_manager.wait_until_finished()
  except Exception as error:  # orbax and TensorStore raise bare Exceptions
    raise faults.save_failed(error, step, checkpoint_manager.directory, previous) from None
  sys.unraisablehook = hook


def _dropping_failed_write_reports(hook):
  """`hook`, but silent on what a failed orbax/TensorStore write reports late;
  anything else (research code's own objects) still reaches `hook`."""
  def filtered(unraisable):
    if not _from_failed_write(unraisable):
      hook(unraisable)
  return filtered


def _from_failed_write(unraisable) -> bool:
  if "Event loop is closed" in str(unraisable.exc_value):
    return True
  if any(name in repr(unraisable.object) for name in _WRITER_MODULES):
    return True
  frame = unraisable.exc_traceback
  while frame is not None:
    if any(name in frame.tb_frame.f_code.co_filename for name in _WRITER_MODULES):
      return True
    frame = frame.tb_next
  return False


_WRITER_MODULES = ("orbax", "tensorstore")


@contextlib.contextmanager
def _quiet_orbax_errors():
  """orbax logs a failed save with its traceback (absl, at ERROR) before
  raising it; the run says the failure in one line, so those logs are
  dropped while a save runs."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(level)


TEMPORARY_PATTERN = "*.orbax-checkpoint-tmp*"  # orbax's folders of unfinished saves


def remove_unfinished(out_dir: str) -> list:
  """Removes the folders orbax left of saves that never finished (a failed
  or killed save) from out_dir's checkpoints/; returns their names. Only for
  the run that owns out_dir: a live save of another process looks the same."""
  removed = []
  for path in sorted(glob.glob(os.path.join(directory(out_dir), TEMPORARY_PATTERN))):
    shutil.rmtree(path, ignore_errors=True)
    removed.append(os.path.basename(path))
  return removed


class CheckpointError(ValueError):
  """A checkpoint that cannot serve, said in one line."""


one_line = faults.one_line


def restore(checkpoint_manager, states, seeds: int, log=print):
  """(step, states) of the newest checkpoint that restores; (None, states)
  if none was ever written.

  A checkpoint that fails to restore (a file cut short or garbled on disk)
  costs a one-line warning and the previous kept one is tried. One written
  by a run on another device count holds another number of padding seeds:
  it is restored to its own shape and its first `seeds` (real) seeds are
  laid onto `states`' padding, whose padding seeds fill the rest.

  Args:
    checkpoint_manager: from `manager`.
    states: stacked TrainState [S_padded, ...], placed as the run wants it.
    seeds: the real seeds (config.train.seeds), at the front of the S axis.
    log: where the warnings go.

  Returns:
    (step, states): like `states` when the padding matches, else host numpy
    arrays [S_padded, ...] for the caller to place.

  Raises:
    CheckpointError: checkpoints exist but none can be used.
  """
  steps = sorted(checkpoint_manager.all_steps(), reverse=True)
  if not steps:
    return None, states
  failures = []
  for i, step in enumerate(steps):
    try:
      with _quiet_failure():
        return step, _restore_step(checkpoint_manager, step, states, seeds, log)
    except CheckpointError:
      raise
    except Exception as error:  # orbax and TensorStore raise bare Exceptions
      failures.append(f"step {step}: {one_line(error)}")
      if i + 1 < len(steps):
        log(f"warning: the checkpoint at step {step} is unreadable ({one_line(error)}); "
            f"falling back to step {steps[i + 1]}")
  raise CheckpointError(f"no usable checkpoint in {checkpoint_manager.directory} "
                        f"({'; '.join(failures)})")


@contextlib.contextmanager
def _quiet_failure():
  """A failed orbax read leaves its sibling reads' coroutines to die in the
  garbage collector, each printing a traceback ("Exception ignored in ...",
  "Event loop is closed"): collect them here, silently, so a failure costs
  the one line the caller makes of it."""
  hook = sys.unraisablehook
  sys.unraisablehook = lambda unraisable: None
  try:
    yield
  except Exception:
    gc.collect()
    raise
  finally:
    sys.unraisablehook = hook


def _restore_step(checkpoint_manager, step: int, states, seeds: int, log):
  import orbax.checkpoint as ocp
  from ntm_jax.training import distributed
  stored = int(checkpoint_manager.item_metadata(step)["step"].shape[0])
  padded = jax.tree_util.tree_leaves(states)[0].shape[0]
  if stored == padded:
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, _stored(states))
    return states.replace(
        **checkpoint_manager.restore(step, args=ocp.args.StandardRestore(abstract)))
  if stored < seeds:
    raise CheckpointError(f"the checkpoint at step {step} holds {stored} seeds, fewer "
                          f"than the {seeds} of the run's config")
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct((stored,) + x.shape[1:], x.dtype, sharding=device),
      _stored(states))
  restored = states.replace(
      **checkpoint_manager.restore(step, args=ocp.args.StandardRestore(target)))
  log(f"the checkpoint holds {seeds} seeds + {stored - seeds} padding; "
      f"re-laid onto {padded - seeds} padding for this device count")
  return jax.tree_util.tree_map(
      lambda saved, fresh: np.concatenate([np.asarray(saved)[:seeds], fresh[seeds:]]),
      restored, distributed.gather_seeds(states))


def load_run(run_dir: str, step: Optional[int] = None, keep_padding: bool = False):
  """(config, states) of a run directory, `states` on the host.

  states is the stacked `ntm_jax.training.TrainState` of the latest (or given)
  checkpoint, every leaf a numpy array with a leading seed axis of
  config.train.seeds (the padding seeds a sharded run adds to fill its
  devices are dropped unless keep_padding).

  How: the stored seed count S (config.train.seeds rounded up to the
  writing run's device count) is read from the checkpoint's metadata (the
  leading axis of `step`); the restore target is the abstract
  `jax.eval_shape(train.init_states(config.model, config.train, S))` with
  every array placed whole on this process's first local device, so no
  original device or mesh is needed and nothing is computed to build it.
  """
  import orbax.checkpoint as ocp
  from ntm_jax import training
  config = load_config(run_dir)
  if not os.path.isdir(directory(run_dir)):
    raise ValueError(f"{run_dir} has no checkpoints/ folder")
  with manager(run_dir, create=False) as manager_:
    step = manager_.latest_step() if step is None else step
    if step is None:
      raise ValueError(f"{run_dir} has no checkpoint")
    if step not in manager_.all_steps():
      raise ValueError(f"{run_dir} has no checkpoint at step {step}; "
                       f"it has {sorted(manager_.all_steps())}")
    stored = int(manager_.item_metadata(step)["step"].shape[0])
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.eval_shape(
        lambda: training.init_states(config.model, config.train, stored))
    target = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), _stored(abstract))
    try:
      with _quiet_failure():
        restored = abstract.replace(
            **manager_.restore(step, args=ocp.args.StandardRestore(target)))
    except Exception as error:  # orbax and TensorStore raise bare Exceptions
      raise CheckpointError(f"the checkpoint at step {step} in {run_dir} is unreadable "
                            f"({one_line(error)})") from None
  states = jax.tree_util.tree_map(np.asarray, restored)
  if not keep_padding:
    states = jax.tree_util.tree_map(lambda x: x[:config.train.seeds], states)
  return config, states


def load_states(run_dir: str, step: Optional[int] = None):
  """The stacked TrainState of `load_run` alone (no padding seeds)."""
  return load_run(run_dir, step)[1]


def seed_params(states, index: int, best: bool = True):
  """One seed's parameters (its best by default) from `load_run`'s states."""
  tree = states.best_params if best else states.params
  return jax.tree_util.tree_map(lambda x: x[index], tree)


def best_seed(summary: dict) -> int:
  """Index of the best seed: converged seeds first, then the lowest error at
  the longest test length (unknown errors last), then the lowest index.

  The error is the task's quality measure at that length: for a predictive
  task whose summary records `optimal_bits_by_length` (N-grams), the excess
  of the seed's bits over the Bayes optimum on the same sequences, since its
  thresholded bit errors stay high even at the optimum; for every other task,
  the bit errors.
  """
  seeds = summary["seeds"]
  longest = str(max(int(n) for n in seeds[0]["bit_errors_by_length"]))

  def error(seed):
    optimal = seed.get("optimal_bits_by_length", {}).get(longest)
    if optimal is not None:
      bits = seed.get("bits_by_length", {}).get(longest)
      return None if bits is None else bits - optimal
    return seed["bit_errors_by_length"].get(longest)

  def rank(item):
    i, seed = item
    e = error(seed)
    return (seed["converged_step"] is None, float("inf") if e is None else e, i)
  return min(enumerate(seeds), key=rank)[0]
