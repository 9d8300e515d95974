"""The public init / apply of every model, through the model protocol.

The cells are flax modules on ONE unbatched time step; `apply` runs them
over time with `jax.lax.scan` and over the batch with `jax.vmap`.
"""
from typing import Optional

import chex
import jax
import jax.numpy as jnp

from ntm_jax.config import ModelConfig
from ntm_jax.models.lstm import LSTM
from ntm_jax.models.ntm import NTM
import ntm_jax.models.ntm_sequence as ntm_sequence
from ntm_jax.models.scan import dynamic_scan

MODELS = {model.config_class.kind: model for model in (NTM, LSTM)}


def get_model(config):
  """The model protocol entry (`ntm_jax.models.base.Model`) for `config`."""
  kind = getattr(config, "kind", None)
  if kind not in MODELS:
    raise TypeError(f"config must be one of {[m.config_class.__name__ for m in MODELS.values()]}, "
                    f"got {type(config).__name__}")
  return MODELS[kind]


def memory_size_for(config, memory_size: Optional[int] = None) -> Optional[int]:
  """The memory rows N that `config`'s model runs with when `memory_size`
  rows are asked for: memory_size, or when it is None (not given) the
  model's own rows; None for a model without an external memory (the LSTM
  baseline), whatever was asked. Every "not given means the model's rows"
  on the way from a flag to the memory array is decided here."""
  own = get_model(config).memory_rows(config)
  if own is None:
    return None
  return own if memory_size is None else memory_size


def cell_memory_size(config, memory_size: Optional[int] = None) -> int:
  """The N a model's cell is built with: `memory_size_for`, or 1 for a
  model without an external memory (its cell takes an N and ignores it)."""
  return memory_size_for(config, memory_size) or 1


def init(rng: jax.Array, config: ModelConfig):
  """Initial parameters of the model `config` describes.

  Args:
    rng: a PRNG key.
    config: `NTMConfig` (an NTM) or `LSTMConfig` (the LSTM baseline).

  Returns:
    A params pytree for `apply`.
  """
  cell = get_model(config).cell_class(config)
  x = jnp.zeros((config.input_size,), jnp.float32)
  return cell.init(rng, cell_memory_size(config), x, method=cell.init_all)


def _run_batch(params, inputs, config, memory_size, return_trace, trace_memory,
               rngs=None, length=None, fused_readout=True):
  """A batch of sequences, inputs [B, T, I] -> (logits [B, T, O], trace).
  rngs: None or [B] keys, one per sequence. `length` (int32 scalar, may be
  traced): run only the first `length` steps, zeros after.

  The time loop runs over the whole batch (the cell vmapped over it inside
  each step), not one loop per sequence: the backward pass then sums each
  step's parameter gradient over the batch inside its matrix products,
  instead of keeping a parameter-sized gradient per sequence."""
  cell = get_model(config).cell_class(config)
  initial_state = lambda rng: cell.apply(params, memory_size, rng, method=cell.initial_state)
  if rngs is None:
    state = jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(a, (inputs.shape[0],) + a.shape), initial_state(None))
  else:
    state = jax.vmap(initial_state)(rngs)

  # A cell with a `readout` returns its step's features from `features`;
  # the readout, a dense layer no recurrence depends on, then runs once
  # over all time steps: one large matrix product instead of T small ones.
  fused = fused_readout and hasattr(cell, "readout")
  method = "features" if fused else None

  def one_sequence_step(params, state, x):
    state, (out, trace) = cell.apply(params, state, x, method=method)
    if not return_trace:
      trace = {}
    elif not trace_memory:
      trace = {k: v for k, v in trace.items() if k != "memory"}
    return state, (out, trace)

  cell_step = jax.vmap(one_sequence_step, in_axes=(None, 0, 0))
  time_major = jnp.swapaxes(inputs, 0, 1)  # [T, B, I]
  if length is not None and fused and not return_trace and ntm_sequence.applies(config):
    # The same numbers, with a backward pass written for the dense layers.
    out, trace = ntm_sequence.features(params, config, state, time_major, length), {}
  elif length is not None:
    # dynamic_scan's backward pass recomputes every step from its input
    # state, the memory saving jax.checkpoint buys the padded scan.
    _, (out, trace) = dynamic_scan(cell_step, params, state, time_major, length)
  else:
    step = lambda state, x: cell_step(params, state, x)
    if config.remat:
      step = jax.checkpoint(step)
    _, (out, trace) = jax.lax.scan(step, state, time_major)
  out = jnp.swapaxes(out, 0, 1)  # [B, T, ...]
  trace = jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), trace)
  if not fused:
    return out, trace
  logits = cell.apply(params, out, method=cell.readout)
  if length is not None:
    logits = jnp.where(jnp.arange(inputs.shape[1])[:, None] < length, logits, 0.0)
  return logits, trace


def apply_step_by_step(params, inputs: jax.Array, config) -> jax.Array:
  """Logits [B, T, output_size] from the model's cell scanned over time,
  every step's logits computed inside the step.

  The reference `apply` computes the same numbers as: for the NTM, with the
  output layer run once after the time loop; for the LSTM baseline, a layer
  at a time (`ntm_jax.models.lstm_sequence`).
  """
  return _run_batch(params, inputs, config, cell_memory_size(config), False, False,
                    fused_readout=False)[0]


def apply(params, inputs: jax.Array, config,
          memory_size: Optional[int] = None, return_trace: bool = False,
          trace_memory: bool = False, rng: Optional[jax.Array] = None,
          length=None):
  """Runs the model over a batch of sequences.

  Args:
    params: from `init` with the same config.
    inputs: [B, T, input_size].
    config: the model's config.
    memory_size: rows N of the memory for this call (None: the model's own;
      `memory_size_for`).
      The controller never sees N, so trained parameters run unchanged on a
      larger memory. Ignored by the LSTM baseline.
    return_trace: also return, per step, the heads' weightings.
    trace_memory: with return_trace, also return the memory at every step.
    rng: a PRNG key for models that draw at the start of a sequence (an NTM
      with memory_init="random" draws each sequence's memory from it; None:
      one fixed draw).
    length: None, or an int32 scalar (may be traced) in [0, T]: the time
      steps to run. The steps past it are never computed (one program serves
      every length, and the padding costs nothing) and their logits and
      trace are zeros. A model with `sequence_logits` (the LSTM baseline)
      runs all T steps and zeroes the logits past it.

  Returns:
    (logits [B, T, output_size], trace). trace is None unless return_trace;
    then a dict with "read_weights" [B, T, R, N], "write_weights"
    [B, T, W, N], "read_addressing" and "write_addressing" (each a
    `heads.Addressing` of the step's constrained head outputs: key
    [B, T, H, M], key_strength, gate and sharpening [B, T, H], shift_weights
    [B, T, H, 2k+1]) and, with trace_memory, "memory" [B, T, N, M].
  """
  if inputs.ndim != 3 or inputs.shape[-1] != config.input_size:
    raise ValueError(f"inputs must be [batch, time, {config.input_size}], "
                     f"got shape {tuple(inputs.shape)}")
  if memory_size is not None and memory_size < 1:
    raise ValueError(f"memory_size must be >= 1, got {memory_size}")
  memory_size = cell_memory_size(config, memory_size)
  model = get_model(config)
  model.check_memory_size(config, memory_size)
  if hasattr(model, "sequence_logits"):
    # The same numbers as scanning the cell, over whole sequences (faster).
    logits = model.sequence_logits(params, inputs, config)
    if length is not None:
      logits = jnp.where(jnp.arange(inputs.shape[1])[:, None] < length, logits, 0.0)
    chex.assert_shape(logits, inputs.shape[:2] + (config.output_size,))
    return logits, ({} if return_trace else None)
  rngs = None if rng is None else jax.random.split(rng, inputs.shape[0])
  logits, trace = _run_batch(params, inputs, config, memory_size, return_trace,
                             trace_memory, rngs, length)
  chex.assert_shape(logits, inputs.shape[:2] + (config.output_size,))
  return logits, (trace if return_trace else None)


def param_count(params) -> int:
  """Number of scalar parameters in a params pytree."""
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
