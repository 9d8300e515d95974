"""The NTM cell, the LSTM baseline cell, and the public init / apply.

Both cells are flax modules on ONE unbatched time step; `apply` runs them
over time with `jax.lax.scan` and over the batch with `jax.vmap`.
"""
from typing import Any, NamedTuple, Optional, Union

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from ntm_jax import addressing
from ntm_jax import heads
from ntm_jax import lstm_sequence
from ntm_jax import memory as memory_ops
from ntm_jax.config import LSTMConfig, NTMConfig
from ntm_jax.controllers import FeedForwardController, LSTMController

ModelConfig = Union[NTMConfig, LSTMConfig]
# The fixed draw behind memory_init="random": the same memory every episode.
_RANDOM_MEMORY_SEED = 0
_RANDOM_MEMORY_SCALE = 0.1


class NTMState(NamedTuple):
  """Recurrent state of one NTM between time steps."""
  # The memory stored by columns, the transpose of the paper's N x M matrix:
  # the layout `ntm_jax.memory` explains (faster on CPUs).
  memory_columns: jax.Array  # [M, N]
  read_weights: jax.Array    # [R, N]
  write_weights: jax.Array   # [W, N]
  read_vectors: jax.Array    # [R, M]
  controller: Any            # controller carry

  @property
  def memory(self) -> jax.Array:
    """[N, M]: the memory in the paper's layout, a row per location."""
    return self.memory_columns.T


_address_heads = jax.vmap(addressing.address_columns,
                          in_axes=(None, 0, 0, 0, 0, 0, 0))


class NTMCell(nn.Module):
  """One time step of a Neural Turing Machine (Graves et al. 2014, Fig. 1)."""
  config: NTMConfig

  def setup(self):
    c = self.config
    if c.controller == "ff":
      self.controller = FeedForwardController(
          hidden_sizes=(c.controller_size,) * c.controller_layers,
          activation=c.controller_activation)
    else:
      self.controller = LSTMController(size=c.controller_size, layers=c.controller_layers)
    self.head_layer = nn.Dense(heads.head_output_size(c), name="heads")
    self.output_layer = nn.Dense(c.output_size, name="output")
    # Learned bias for the first step's read vectors (the paper's "bias values").
    self.initial_read = self.param("initial_read", nn.initializers.normal(0.1),
                                   (c.read_heads, c.memory_width))
    if c.memory_init == "learned":
      self.learned_memory = self.param(
          "initial_memory", nn.initializers.normal(0.1),
          (c.memory_rows, c.memory_width))

  def initial_memory(self, memory_size: int) -> jax.Array:
    """[memory_size, M]. Rows past a learned init's N use the constant init."""
    c = self.config
    shape = (memory_size, c.memory_width)
    if c.memory_init == "random":
      return _RANDOM_MEMORY_SCALE * jax.random.normal(
          jax.random.PRNGKey(_RANDOM_MEMORY_SEED), shape)
    constant = jnp.full(shape, c.memory_init_value, jnp.float32)
    if c.memory_init == "learned":
      rows = min(memory_size, c.memory_rows)
      return constant.at[:rows].set(self.learned_memory[:rows])
    return constant

  def initial_state(self, memory_size: int) -> NTMState:
    c = self.config
    # Every head starts focused on row 0: independent of N, so trained
    # parameters run unchanged on a larger memory.
    start = jax.nn.one_hot(0, memory_size)
    return NTMState(
        memory_columns=self.initial_memory(memory_size).T,
        read_weights=jnp.tile(start, (c.read_heads, 1)),
        write_weights=jnp.tile(start, (c.write_heads, 1)),
        read_vectors=self.initial_read,
        controller=self.controller.initial_carry())

  def __call__(self, state: NTMState, x: jax.Array):
    """One step. x: [input_size] -> (new state, (logits [output_size], trace))."""
    c = self.config
    controller_input = jnp.concatenate([x, state.read_vectors.reshape(-1)])
    controller_carry, hidden = self.controller(state.controller, controller_input)
    read, write, vectors = heads.split_head_outputs(self.head_layer(hidden), c)

    # Write first, then read, so a value can be read back on the step it is
    # written (the copy task's output phase needs no extra delay step).
    write_weights = _address_heads(state.memory_columns, state.write_weights, *write)
    columns = memory_ops.write_heads_columns(
        state.memory_columns, write_weights, vectors.erase, vectors.add)
    read_weights = _address_heads(columns, state.read_weights, *read)
    read_vectors = memory_ops.read_heads_columns(columns, read_weights)  # [R, M]

    logits = self.output_layer(jnp.concatenate([hidden, read_vectors.reshape(-1)]))
    new_state = NTMState(columns, read_weights, write_weights, read_vectors,
                         controller_carry)
    trace = {"read_weights": read_weights, "write_weights": write_weights,
             "memory": columns.T}  # [N, M], the paper's layout
    return new_state, (logits, trace)

  def init_all(self, memory_size: int, x: jax.Array):
    return self(self.initial_state(memory_size), x)


class LSTMCell(nn.Module):
  """One time step of the stacked-LSTM baseline."""
  config: LSTMConfig

  def setup(self):
    self.controller = LSTMController(size=self.config.size, layers=self.config.layers)
    self.output_layer = nn.Dense(self.config.output_size, name="output")

  def initial_state(self, memory_size: int):
    del memory_size  # an LSTM has no external memory
    return self.controller.initial_carry()

  def __call__(self, state, x: jax.Array):
    state, hidden = self.controller(state, x)
    return state, (self.output_layer(hidden), {})

  def init_all(self, memory_size: int, x: jax.Array):
    return self(self.initial_state(memory_size), x)


def _cell(config: ModelConfig) -> nn.Module:
  if isinstance(config, NTMConfig):
    return NTMCell(config)
  if isinstance(config, LSTMConfig):
    return LSTMCell(config)
  raise TypeError(f"config must be NTMConfig or LSTMConfig, got {type(config).__name__}")


def _default_memory_size(config: ModelConfig) -> int:
  return config.memory_rows if isinstance(config, NTMConfig) else 1


def init(rng: jax.Array, config: ModelConfig):
  """Initial parameters of the model `config` describes.

  Args:
    rng: a PRNG key.
    config: `NTMConfig` (an NTM) or `LSTMConfig` (the LSTM baseline).

  Returns:
    A params pytree for `apply`.
  """
  cell = _cell(config)
  x = jnp.zeros((config.input_size,), jnp.float32)
  return cell.init(rng, _default_memory_size(config), x, method=cell.init_all)


def _run_sequence(params, inputs, config, memory_size, return_trace, trace_memory):
  cell = _cell(config)
  state = cell.apply(params, memory_size, method=cell.initial_state)

  def step(state, x):
    state, (logits, trace) = cell.apply(params, state, x)
    if not return_trace:
      trace = {}
    elif not trace_memory:
      trace = {k: v for k, v in trace.items() if k != "memory"}
    return state, (logits, trace)

  if config.remat:
    step = jax.checkpoint(step)
  _, (logits, trace) = jax.lax.scan(step, state, inputs)
  return logits, trace


def apply_step_by_step(params, inputs: jax.Array, config: ModelConfig) -> jax.Array:
  """Logits [B, T, output_size] from the model's cell scanned over time.

  The path `apply` takes for the NTM; for the LSTM baseline, the reference
  its layer-at-a-time path (`ntm_jax.lstm_sequence`) computes the same
  numbers as.
  """
  return jax.vmap(_run_sequence, in_axes=(None, 0, None, None, None, None))(
      params, inputs, config, _default_memory_size(config), False, False)[0]


def apply(params, inputs: jax.Array, config: ModelConfig,
          memory_size: Optional[int] = None, return_trace: bool = False,
          trace_memory: bool = False):
  """Runs the model over a batch of sequences.

  Args:
    params: from `init` with the same config.
    inputs: [B, T, input_size].
    config: the model's config.
    memory_size: rows N of the memory for this call (default: the config's).
      The controller never sees N, so trained parameters run unchanged on a
      larger memory. Ignored by the LSTM baseline.
    return_trace: also return, per step, the heads' weightings.
    trace_memory: with return_trace, also return the memory at every step.

  Returns:
    (logits [B, T, output_size], trace). trace is None unless return_trace;
    then a dict with "read_weights" [B, T, R, N], "write_weights"
    [B, T, W, N] and, with trace_memory, "memory" [B, T, N, M].
  """
  if inputs.ndim != 3 or inputs.shape[-1] != config.input_size:
    raise ValueError(f"inputs must be [batch, time, {config.input_size}], "
                     f"got shape {tuple(inputs.shape)}")
  if memory_size is None:
    memory_size = _default_memory_size(config)
  elif memory_size < 1:
    raise ValueError(f"memory_size must be >= 1, got {memory_size}")
  if isinstance(config, NTMConfig) and memory_size < config.shift_range:
    raise ValueError(f"memory_size {memory_size} is smaller than shift_range "
                     f"{config.shift_range}")
  if isinstance(config, LSTMConfig):
    # The same numbers as the LSTMCell scan, a layer at a time (faster).
    logits = lstm_sequence.apply_lstm(params, inputs, config.layers, config.remat)
    chex.assert_shape(logits, inputs.shape[:2] + (config.output_size,))
    return logits, ({} if return_trace else None)
  logits, trace = jax.vmap(
      _run_sequence, in_axes=(None, 0, None, None, None, None))(
          params, inputs, config, memory_size, return_trace, trace_memory)
  chex.assert_shape(logits, inputs.shape[:2] + (config.output_size,))
  return logits, (trace if return_trace else None)


def param_count(params) -> int:
  """Number of scalar parameters in a params pytree."""
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
