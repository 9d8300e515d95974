"""Reading a run directory back: its config, summary, metrics and checkpoint."""
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
  path = os.path.join(run_dir, "summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def load_metrics(run_dir: str) -> list:
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def load_states(run_dir: str, step: Optional[int] = None) -> dict:
  """The stacked TrainState of the latest (or given) checkpoint, as a nested
  dict of host numpy arrays with a leading seed axis (which may include the
  padding seeds of a sharded run). Needs no device layout."""
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(os.path.abspath(os.path.join(run_dir, "checkpoints")),
                                  item_handlers=ocp.StandardCheckpointHandler())
  step = manager.latest_step() if step is None else step
  if step is None:
    raise ValueError(f"{run_dir} has no checkpoint")
  # The run may have sharded its seeds over devices this process lacks: read
  # every array whole onto one local device.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree_util.tree_map(
      lambda meta: jax.ShapeDtypeStruct(meta.shape, meta.dtype, sharding=device),
      manager.item_metadata(step))
  restored = manager.restore(step, args=ocp.args.StandardRestore(target))
  return jax.tree_util.tree_map(np.asarray, restored)


def seed_params(states: dict, index: int, best: bool = True):
  """One seed's parameters (its best by default) from `load_states`."""
  tree = states["best_params" if best else "params"]
  return jax.tree_util.tree_map(lambda x: x[index], tree)


def best_seed(summary: dict) -> int:
  """Index of the seed with the fewest bit errors at the longest test length,
  converged seeds first."""
  longest = list(summary["aggregate"]["median_bit_errors_by_length"])[-1]

  def rank(item):
    i, seed = item
    error = seed["bit_errors_by_length"][longest]
    return (seed["converged_step"] is None, float("inf") if error is None else error, i)
  return min(enumerate(summary["seeds"]), key=rank)[0]
