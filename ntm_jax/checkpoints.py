"""Reading a run directory back: its config, summary, metrics and checkpoint.

    config, states = ntm_jax.checkpoints.load_run("runs/copy/<ts>")
    params = ntm_jax.checkpoints.seed_params(states, index)   # that seed's best params

The checkpoint is restored onto this process's first local device, whatever
device layout wrote it (a run that sharded its seeds over 2 devices loads on
a 1-device machine and vice versa); see `load_run`.
"""
import json
import os
from typing import Optional

import jax
import numpy as np

from ntm_jax.experiment import ExperimentConfig


def load_config(run_dir: str) -> ExperimentConfig:
  with open(os.path.join(run_dir, "config.json")) as f:
    return ExperimentConfig.from_json(json.load(f))


def load_summary(run_dir: str) -> Optional[dict]:
  """summary.json's content, or None for a run that has not finished."""
  path = os.path.join(run_dir, "summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def load_metrics(run_dir: str) -> list:
  """metrics.jsonl as a list of dicts (a line cut short by a crash is dropped)."""
  rows = []
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        break
  return rows


def load_run(run_dir: str, step: Optional[int] = None, keep_padding: bool = False):
  """(config, states) of a run directory, `states` on the host.

  states is the stacked `ntm_jax.train.TrainState` of the latest (or given)
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
  from ntm_jax import train as train_lib
  config = load_config(run_dir)
  directory = os.path.abspath(os.path.join(run_dir, "checkpoints"))
  if not os.path.isdir(directory):
    raise ValueError(f"{run_dir} has no checkpoints/ folder")
  with ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler()) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise ValueError(f"{run_dir} has no checkpoint")
    if step not in manager.all_steps():
      raise ValueError(f"{run_dir} has no checkpoint at step {step}; "
                       f"it has {sorted(manager.all_steps())}")
    stored = int(manager.item_metadata(step)["step"].shape[0])
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.eval_shape(
        lambda: train_lib.init_states(config.model, config.train, stored))
    target = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
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
  """Index of the best seed: converged seeds first, then the fewest bit
  errors at the longest test length (unknown errors last), then the lowest
  index."""
  seeds = summary["seeds"]
  longest = str(max(int(n) for n in seeds[0]["bit_errors_by_length"]))

  def rank(item):
    i, seed = item
    error = seed["bit_errors_by_length"].get(longest)
    return (seed["converged_step"] is None, float("inf") if error is None else error, i)
  return min(enumerate(seeds), key=rank)[0]
