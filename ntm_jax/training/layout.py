"""How seeds are laid over devices: vmapped, in cache-sized groups on a CPU,
and split over the devices of a 1-D "seeds" mesh (seeds never talk).

A seed's results depend only on its seed and the settings, not on the
layout, because (measured bitwise on the copy NTM):
- XLA rounds a vmapped program differently for different vmap widths, so on
  a CPU the group width is FIXED (the model's `cpu_seeds_per_group`) and the
  seeds are padded to a whole number of groups per device
  (`padded_seed_count`); a seed's position within a group does not matter;
- a program partitioned over several devices (shard_map or a sharded jit)
  is optimised differently from a one-device program, so every device runs
  the very program a one-device run compiles (`_PerDevice`).
On accelerators every seed of a device runs at once: there the results
depend on the number of seeds per device (config.json's provenance records
it).
"""
import concurrent.futures
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
  if local_seeds % target == 0:
    return target  # the layout-independent case the engine pads for
  candidates = [d for d in range(min(3, local_seeds, target), local_seeds + 1)
                if local_seeds % d == 0]
  return min(candidates, key=lambda d: (abs(d - target), -d))


def padded_seed_count(seeds: int, devices: int, group: Optional[int]) -> int:
  """Seeds to run: `seeds` rounded up so every device holds the same whole
  number of groups of exactly `group` seeds (None: one device's share). The
  extra seeds are the next seed numbers; their results are dropped."""
  per = devices * (group or 1)
  return -(-seeds // per) * per


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
  platform and `model_config`.
  in_axes: 0, or a tuple of 0 / None per positional argument; None marks an
  argument shared by every seed (unbatched, replicated over the mesh).
  Results are bit-identical across layouts when every device's seed count
  is a multiple of the group size (`padded_seed_count`).
  """
  if group_target == "auto":
    group_target = default_group_target(
        mesh.devices.flat[0].platform if mesh is not None else jax.default_backend(),
        model_config)
  batched = _grouped_vmap(fn, group_target, in_axes)
  if mesh is not None and mesh.size > 1:
    return _PerDevice(batched, mesh, in_axes)
  return jax.jit(batched)


class _PerDevice:
  """Runs one one-device program on each device's own seeds, dispatched
  asynchronously so the devices work at once; arguments and results are
  global arrays sharded over the mesh's seed axis, as a sharded jit's are.
  Several processes: each runs its own local devices."""

  def __init__(self, batched, mesh, in_axes=0):
    self.jitted = jax.jit(batched)
    self.mesh = mesh
    self.sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
    self.devices = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    self.in_axes = in_axes
    self.compiled = {}  # argument signature -> one executable per local device

  def _split(self, args):
    """Per local device, that device's slice of every seeded argument (and
    the shared ones whole, on that device)."""
    axes = self.in_axes if isinstance(self.in_axes, tuple) else (self.in_axes,) * len(args)
    per_device = [[] for _ in self.devices]
    for arg, axis in zip(args, axes):
      if axis is None:
        for i, device in enumerate(self.devices):
          per_device[i].append(jax.device_put(arg, device))
        continue
      arg = jax.device_put(arg, self.sharding)
      for i, device in enumerate(self.devices):
        per_device[i].append(jax.tree_util.tree_map(
            lambda x, d=device: next(s.data for s in x.addressable_shards if s.device == d),
            arg))
    return per_device

  def _join(self, outs):
    def leaf(*parts):
      shape = (parts[0].shape[0] * self.mesh.size,) + parts[0].shape[1:]
      return jax.make_array_from_single_device_arrays(shape, self.sharding, list(parts))
    return jax.tree_util.tree_map(leaf, *outs)

  def __call__(self, *args):
    per_device = self._split(args)
    signature = jax.tree_util.tree_structure(args), tuple(
        (x.shape, x.dtype) for x in jax.tree_util.tree_leaves(per_device[0]))
    if signature not in self.compiled:
      self.compiled[signature] = self._compile(per_device)
    return self._join([c(*a) for c, a in zip(self.compiled[signature], per_device)])

  def _compile(self, per_device) -> list:
    """Each device's executable of the one program, compiled at once in
    threads (XLA compiles without the GIL)."""
    lowered = [self.jitted.lower(*a) for a in per_device]
    with concurrent.futures.ThreadPoolExecutor(len(lowered)) as pool:
      return list(pool.map(lambda one: one.compile(), lowered))

  def lower(self, *args):
    parent, per_device = self, self._split(args)

    class Lowered:
      def compile(self):
        compiled = parent._compile(per_device)
        return lambda *a: parent._join([c(*x) for c, x in zip(compiled, parent._split(a))])
    return Lowered()
