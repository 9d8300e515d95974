"""How much memory a run needs, from its config, before anything compiles.

`estimate(config, devices, platform)` adds up what each device holds at its
peak (bytes, rounded up where unsure):

- state: every seed's `TrainState` (parameters, the optimizer's moments,
  best parameters, and average parameters / best optimizer state when those
  settings are on), counted from `jax.eval_shape` of `init_state`, three
  times over: the chunk's input, its output, and the engine's copy being
  checkpointed or gathered;
- training: per seed of a group (the seeds a device runs at once,
  `layout.seeds_per_group`), what the backward pass keeps of every time step
  (the residuals of `jax.vjp` of `models.apply` over the padded sequence:
  for the NTM each step's memory, weightings, addressing stages and
  controller activations; with remat only what it keeps), times
  TRAIN_FACTOR for the cotangents and one step's temporaries, plus
  gradients and optimizer temporaries, plus the chunk's evaluation;
- test: the forward pass over every test length at once (`test_batch`
  sequences each) on the test memory, per seed of a group.

The chunk and the test run one after the other, so the peak is the state
plus the larger of the two. On a CPU every device's seeds live in the same
RAM, so the devices' needs add up, each with CPU_DEVICE_OVERHEAD for the
process's share. TRAIN_FACTOR, FORWARD_LSTM_WIDTHS, CARRY_COPIES and
CPU_DEVICE_OVERHEAD were fitted to XLA's `memory_analysis()` of the engine's
compiled chunk and test programs and to the peak RSS of real runs: the
estimate came out 1.1-1.6 times the peak RSS of nine real runs and 1.1-1.3
times XLA's figures for large batches and memories (tests/test_memory_estimate.py
checks it against XLA's).

`check_fits(config, devices)` compares the estimate with
`available_memory_bytes` and refuses, in one line naming the flag to
lower, a run that cannot fit.
"""
import dataclasses
import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntm_jax import models
from ntm_jax.config import ExperimentConfig, TrainConfig
import ntm_jax.training.draws as draws
import ntm_jax.training.layout as layout
from ntm_jax.training.step import init_state

# The backward pass's residuals, times this: their cotangents and one time
# step's temporaries (XLA's temp / residuals: 1.07-1.3 for big batches or
# memories, up to 1.9 for tiny ones, where the fixed parts dominate).
TRAIN_FACTOR = 1.4
# The forward pass of an evaluation or test keeps per sequence and time step
# its inputs, targets, mask, logits and the metrics' temporaries (I + 4 O +
# 2 floats) and twice a step's features: for the NTM its controller output
# and read vectors; for the LSTM baseline, which runs a layer at a time over
# the whole sequence, 6.5 x its width (gates, cells and hidden states).
# XLA: the copy NTM's test 1.05 KB per sequence-step (this: 1.13 KB); the
# LSTM baseline's 11.6 KB (this: 13.4 KB).
FORWARD_LSTM_WIDTHS = 6.5
# A forward pass's recurrent state (the NTM's memory), this many copies per
# sequence: the carry and a step's temporaries.
CARRY_COPIES = 1.5
# Gradients, updates and the new optimizer state of one seed's step.
UPDATE_COPIES = 2
# Copies of every seed's TrainState alive at once (see the docstring).
STATE_COPIES = 3
# A CPU device's share of the process: Python, jax, XLA's runtime, and
# above all compiling its programs (every device's at once, in threads):
# tiny runs peaked at 0.70 and 1.02 GB RSS on one device, 1.53 and 2.23 GB
# on two (copy, ngrams).
CPU_DEVICE_OVERHEAD = 1.1e9
_GB = 1e9


def _bytes(tree) -> int:
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
             for x in jax.tree_util.tree_leaves(tree))


@functools.lru_cache(maxsize=64)
def state_bytes(model_config, train_config: TrainConfig) -> int:
  """Bytes of one seed's TrainState (`jax.eval_shape` of `init_state`)."""
  return _bytes(jax.eval_shape(
      lambda key: init_state(key, model_config, train_config), jax.random.PRNGKey(0)))


@functools.lru_cache(maxsize=64)
def backward_bytes(model_config, steps: int, memory_size: Optional[int]) -> tuple:
  """(fixed, per sequence): bytes the backward pass keeps of a batch of
  sequences of `steps` time steps, the residuals of `jax.vjp` of
  `models.apply` (shapes only, no compile) split into a part that does
  not grow with the batch (e.g. the LSTM's kernels) and one per sequence."""
  params = jax.eval_shape(lambda: models.init(jax.random.PRNGKey(0), model_config))

  def residual_bytes(batch):
    inputs = jax.ShapeDtypeStruct((batch, steps, model_config.input_size), jnp.float32)

    def residuals(params, inputs):
      return jax.vjp(lambda p: models.apply(p, inputs, model_config, memory_size=memory_size,
                                            length=jnp.int32(steps))[0], params)[1]
    return _bytes(jax.eval_shape(residuals, params, inputs))
  one, two = residual_bytes(1), residual_bytes(2)
  return one - (two - one), two - one


@functools.lru_cache(maxsize=64)
def _carry_bytes(model_config, memory_size: Optional[int]) -> int:
  """Bytes of one sequence's recurrent state (for the NTM its memory)."""
  cell = models.get_model(model_config).cell_class(model_config)
  params = jax.eval_shape(lambda: models.init(jax.random.PRNGKey(0), model_config))
  size = models.cell_memory_size(model_config, memory_size)
  return _bytes(jax.eval_shape(
      lambda p: cell.apply(p, size, method=cell.initial_state), params))


def _forward_floats_per_step(model_config) -> float:
  """Floats a forward pass keeps per sequence and time step."""
  io = model_config.input_size + 4 * model_config.output_size + 2
  if model_config.kind == "lstm":
    return io + 2 * FORWARD_LSTM_WIDTHS * model_config.size
  cell = models.get_model(model_config).cell_class(model_config)
  if not hasattr(cell, "features"):  # unknown: what its backward keeps, an upper bound
    return backward_bytes(model_config, 1, None)[1] / 4
  params = jax.eval_shape(lambda: models.init(jax.random.PRNGKey(0), model_config))
  rows = models.cell_memory_size(model_config)
  state = jax.eval_shape(lambda p: cell.apply(p, rows, method=cell.initial_state), params)
  x = jax.ShapeDtypeStruct((model_config.input_size,), jnp.float32)
  _, (features, _) = jax.eval_shape(
      lambda p, s, x: cell.apply(p, s, x, method="features"), params, state, x)
  return io + 2 * int(np.prod(features.shape))


def forward_bytes(model_config, sequences: int, steps: int, memory_size: Optional[int]) -> int:
  """Bytes of a forward pass (an evaluation or a test) of `sequences`
  sequences padded to `steps` time steps, on `memory_size` rows."""
  return int(sequences * (steps * 4 * _forward_floats_per_step(model_config)
                          + CARRY_COPIES * _carry_bytes(model_config, memory_size)))


@dataclasses.dataclass(frozen=True)
class Estimate:
  """A run's memory, in bytes.

  per_device: the peak of one device: `state` plus the larger of
    `training` and `test` (each already for the seeds it holds at once).
  total: what the run needs of the memory the devices share (a CPU's RAM:
    every device's per_device plus CPU_DEVICE_OVERHEAD each; on an
    accelerator one device's per_device).
  detail: the largest term, in words; hint: the flags that lower it.
  """
  per_device: int
  total: int
  devices: int
  platform: str
  state: int
  training: int
  test: int
  detail: str
  hint: str


def estimate(config: ExperimentConfig, devices: int = 1, platform: str = "cpu",
             task=None) -> Estimate:
  """The memory `config` needs on `devices` devices of `platform` (see the
  module docstring); `task` is config's task if already built. Traces
  shapes only: no compile, about a second."""
  t, model = config.train, config.model
  task = config.make_task() if task is None else task
  target = layout.default_group_target(platform, model)
  per_device = layout.padded_seed_count(t.seeds, devices, target) // devices
  group = layout.seeds_per_group(per_device, target)
  rows = models.memory_size_for(model)

  state = STATE_COPIES * per_device * state_bytes(model, _state_settings(t))
  steps = task.sequence_steps(draws.padded_length(t))
  memories = t.train_memory_sizes or (rows,)
  backward = max(fixed + t.batch_size * per_sequence  # the largest memory's
                 for fixed, per_sequence in (backward_bytes(model, steps, n) for n in memories))
  train_seed = int(TRAIN_FACTOR * backward
                   + UPDATE_COPIES * state_bytes(model, _state_settings(t)))
  lengths = t.max_length - t.min_length + 1
  eval_seed = forward_bytes(model, lengths * -(-t.eval_batch // lengths),
                            task.sequence_steps(t.max_length),
                            models.memory_size_for(model, t.eval_memory_size))
  training = group * (train_seed + eval_seed)
  tests = [task] + list(getattr(task, "test_variants", dict)().values())
  test_steps = max(variant.sequence_steps(max(t.test_lengths)) for variant in tests)
  test_memory = models.memory_size_for(model, t.test_memory_size)
  test = group * forward_bytes(model, t.test_batch * len(t.test_lengths), test_steps,
                               test_memory)
  peak = state + max(training, test)
  total = int(devices * (peak + CPU_DEVICE_OVERHEAD)) if platform == "cpu" else peak
  at_once = f", {group} seed{'s' if group > 1 else ''} at a time"
  memory = f" on {max(memories)} memory rows" if rows is not None else ""
  if state >= max(training, test):
    detail = (f"{per_device} seeds' training state of "
              f"{_size(state_bytes(model, _state_settings(t)))} each")
    hint = "--seeds"
  elif training >= test:
    detail = f"activations of batch {t.batch_size} x {steps} steps{memory}{at_once}"
    hint = "--batch_size, --max_length" + (" or --memory_rows" if rows is not None else "")
    if platform != "cpu":
      hint = hint.replace(" or ", ", ") + " or --seeds"
  else:
    detail = (f"the test of {t.test_batch} sequences x {len(t.test_lengths)} lengths "
              f"x {test_steps} steps{'' if test_memory is None else f' on {test_memory} rows'}"
              f"{at_once}")
    hint = "--test_batch, --test_lengths" + (
        " or --test_memory_size" if test_memory is not None else "")
  return Estimate(per_device=peak, total=total, devices=devices, platform=platform,
                  state=state, training=training, test=test, detail=detail, hint=hint)


def _state_settings(t: TrainConfig) -> TrainConfig:
  """The settings a TrainState's size depends on (one cache entry per kind)."""
  return TrainConfig(optimizer=t.optimizer,
                     average_while_converged=0.5 if t.average_while_converged else 0.0,
                     restore_best_on_collapse=t.restore_best_on_collapse,
                     restore_optimizer_state=t.restore_optimizer_state,
                     skip_spikes_while_converged=t.skip_spikes_while_converged)


def _size(n: float) -> str:
  """Bytes as people say them: 160 GB, 2.4 GB, 310 MB."""
  if n >= 10 * _GB:
    return f"{n / _GB:.0f} GB"
  if n >= _GB:
    return f"{n / _GB:.1f} GB"
  if n >= 1e6:
    return f"{n / 1e6:.0f} MB"
  return f"{max(1, round(n / 1e3))} KB"


def available_memory_bytes(device=None) -> Optional[int]:
  """Memory free for a run on `device` (default: the first local device):
  a CPU's MemAvailable from /proc/meminfo (Linux), an accelerator's
  bytes_limit - bytes_in_use from `memory_stats()`; None when unknown."""
  device = device or jax.local_devices()[0]
  if device.platform == "cpu":
    try:
      with open("/proc/meminfo") as f:
        for line in f:
          if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
      return None
    return None
  try:
    stats = device.memory_stats()
  except Exception:  # a backend without it
    return None
  if not stats or "bytes_limit" not in stats:
    return None
  return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def check_fits(config: ExperimentConfig, devices: Sequence, task=None) -> None:
  """Raises ValueError (one line) when `config` cannot fit the memory of
  `devices` (the run's devices, e.g. its mesh's `devices.flat`; `task`:
  config's task if already built); does nothing when the free memory is
  unknown."""
  devices = list(devices)
  local = [d for d in devices if d.process_index == jax.process_index()] or devices
  available = [available_memory_bytes(d) for d in local]
  if any(a is None for a in available):
    return
  platform = local[0].platform
  need = estimate(config, len(devices), platform, task)
  if platform == "cpu":
    # One RAM for every local device: their needs add up.
    have = min(available)
    total = len(local) * (need.per_device + CPU_DEVICE_OVERHEAD)
    where = (f" ({_size(need.per_device)} on each of {len(local)} CPU devices)"
             if len(local) > 1 else "")
    if total > have:
      raise ValueError(
          f"the run needs about {_size(total)}{where}, most of it {need.detail}, but "
          f"{_size(have)} is available; lower {need.hint}")
    return
  have = min(available)
  if need.per_device > have:
    raise ValueError(
        f"the run needs about {_size(need.per_device)} per {platform} device, most of it "
        f"{need.detail}, but {_size(have)} is available; lower {need.hint}")


__all__ = ["Estimate", "available_memory_bytes", "check_fits", "estimate"]
