"""How seeds are laid over devices: vmapped, in cache-sized groups on a CPU,
and split over a mesh of devices with `jax.shard_map` (seeds never talk)."""
from typing import Optional, Union

import jax

from ntm_jax import models


def seeds_per_group(local_seeds: int, target: Optional[int]) -> int:
  """How many of a device's `local_seeds` run at once: the divisor of
  local_seeds nearest `target` (ties: the larger), never below 3 unless
  local_seeds or target is, so for a target of 3 or more a prime count keeps
  all its seeds together rather than running one at a time. `target` None:
  all of them."""
  if target is None or local_seeds <= target:
    return local_seeds
  candidates = [d for d in range(min(3, local_seeds, target), local_seeds + 1)
                if local_seeds % d == 0]
  return min(candidates, key=lambda d: (abs(d - target), -d))


def _grouped_vmap(fn, target: Optional[int], in_axes=0):
  """vmap `fn` over the leading seed axis, `seeds_per_group` seeds at a time.
  in_axes: 0, or a tuple of 0 / None per positional argument (None: shared
  by every seed, passed whole to every group)."""
  batched = jax.vmap(fn, in_axes=in_axes)

  def run(*args):
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    seeded = [a if axis is not None else None for a, axis in zip(args, axes)]
    seeds = jax.tree_util.tree_leaves(seeded)[0].shape[0]
    group = seeds_per_group(seeds, target)
    if group == seeds:
      return batched(*args)
    split = jax.tree_util.tree_map(
        lambda x: x.reshape((seeds // group, group) + x.shape[1:]), seeded)
    out = jax.lax.map(lambda group_args: batched(*[
        g if axis is not None else a for g, a, axis in zip(group_args, args, axes)]), split)
    return jax.tree_util.tree_map(lambda x: x.reshape((seeds,) + x.shape[2:]), out)
  return run


def default_group_target(platform: str, model_config=None) -> Optional[int]:
  """Seeds per group on `platform` ("cpu", "gpu", "tpu") for `model_config`'s
  model (its protocol's `cpu_seeds_per_group`): None is all at once."""
  if platform != "cpu":
    return None
  if model_config is None:
    return models.NTM.cpu_seeds_per_group
  return models.get_model(model_config).cpu_seeds_per_group


def make_seed_parallel(fn, mesh=None, group_target: Union[int, None, str] = "auto",
                       model_config=None, in_axes=0):
  """vmap `fn` over a leading seed axis of every argument and output, jit it,
  and, given a 1-D mesh with axis "seeds", split the seeds across its devices
  (no communication: seeds are independent).

  group_target: seeds vmapped at once on each device (see `seeds_per_group`);
  None for all at once; "auto" for `default_group_target` of the devices'
  platform and `model_config`. Grouping changes speed, not results.
  in_axes: 0, or a tuple of 0 / None per positional argument; None marks an
  argument shared by every seed (unbatched, replicated over the mesh).
  """
  if group_target == "auto":
    group_target = default_group_target(
        mesh.devices.flat[0].platform if mesh is not None else jax.default_backend(),
        model_config)
  batched = _grouped_vmap(fn, group_target, in_axes)
  if mesh is not None and mesh.size > 1:
    spec = jax.sharding.PartitionSpec("seeds")
    in_specs = spec if not isinstance(in_axes, tuple) else tuple(
        spec if axis is not None else jax.sharding.PartitionSpec() for axis in in_axes)
    batched = jax.shard_map(batched, mesh=mesh, in_specs=in_specs, out_specs=spec,
                            check_vma=False)
  return jax.jit(batched)
