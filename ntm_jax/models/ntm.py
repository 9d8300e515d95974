"""The NTM cell (Graves et al. 2014, Fig. 1) on ONE unbatched time step.

`ntm_jax.models.api.apply` runs it over time with `jax.lax.scan` and over the
batch with `jax.vmap`. `NTM` is the model protocol's entry for this cell
(`ntm_jax.models.base.Model`).
"""
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from ntm_jax.config import NTMConfig
import ntm_jax.models.flops as flops
import ntm_jax.models.heads as heads
import ntm_jax.models.memory_step as memory_step_ops
from ntm_jax.models.controllers import FeedForwardController, LSTMController

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


def memory_step(config: NTMConfig, state: NTMState, raw_heads: jax.Array):
  """The part of a step after the head layer; it has no parameters
  (`ntm_jax.models.memory_step`).

  Args:
    config: the NTM config.
    state: the state before the step (its controller carry is passed on
      unchanged; the cell replaces it).
    raw_heads: [head_output_size] the head layer's output.

  Returns:
    (state after the step, trace).
  """
  carry = (state.memory_columns, state.read_weights, state.write_weights,
           state.read_vectors)
  (columns, read_weights, write_weights, read_vectors), _ = memory_step_ops.step(
      config, carry, raw_heads)
  new_state = NTMState(columns, read_weights, write_weights, read_vectors,
                       state.controller)
  # The constrained head outputs (key, beta, g, shifts, gamma), so an
  # inspection can tell content from location addressing. `step` computes
  # them too; XLA merges the two, and drops them when no trace is returned.
  read_head, write_head, _ = heads.split_head_outputs(raw_heads, config)
  trace = {"read_weights": read_weights, "write_weights": write_weights,
           "read_addressing": read_head, "write_addressing": write_head,
           "memory": columns.T}  # [N, M], the paper's layout
  return new_state, trace


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
    self.head_layer = nn.Dense(heads.head_output_size(c), name="heads",
                               bias_init=lambda *_: heads.head_bias_init(c))
    self.output_layer = nn.Dense(c.output_size, name="output")
    # Learned bias for the first step's read vectors (the paper's "bias values").
    self.initial_read = self.param("initial_read", nn.initializers.normal(0.1),
                                   (c.read_heads, c.memory_width))
    if c.memory_init == "learned":
      self.learned_memory = self.param(
          "initial_memory", nn.initializers.normal(0.1),
          (c.memory_rows, c.memory_width))
    elif c.memory_init == "first_row":
      self.learned_memory = self.param(
          "initial_first_row", nn.initializers.normal(0.1), (1, c.memory_width))

  def initial_memory(self, memory_size: int, rng=None) -> jax.Array:
    """[memory_size, M]. Rows past the learned ones (a learned init's N, or
    first_row's row 0) use the constant init."""
    c = self.config
    shape = (memory_size, c.memory_width)
    if c.memory_init == "random":
      # A fresh draw per sequence from `rng` (the engine passes a key per
      # step and sequence); without one, a fixed draw, for inference.
      rng = jax.random.PRNGKey(0) if rng is None else rng
      return _RANDOM_MEMORY_SCALE * jax.random.normal(rng, shape)
    constant = jnp.full(shape, c.memory_init_value, jnp.float32)
    if c.memory_init in ("learned", "first_row"):
      rows = min(memory_size, self.learned_memory.shape[0])
      return constant.at[:rows].set(self.learned_memory[:rows])
    return constant

  def initial_state(self, memory_size: int, rng=None) -> NTMState:
    c = self.config
    # Every head starts focused on row 0: independent of N, so trained
    # parameters run unchanged on a larger memory.
    start = jax.nn.one_hot(0, memory_size)
    return NTMState(
        memory_columns=self.initial_memory(memory_size, rng).T,
        read_weights=jnp.tile(start, (c.read_heads, 1)),
        write_weights=jnp.tile(start, (c.write_heads, 1)),
        read_vectors=self.initial_read,
        controller=self.controller.initial_carry())

  def __call__(self, state: NTMState, x: jax.Array):
    """One step. x: [input_size] -> (new state, (logits [output_size], trace))."""
    state, (features, trace) = self.features(state, x)
    return state, (self.readout(features), trace)

  def readout(self, features: jax.Array) -> jax.Array:
    """[..., H + R M] step features -> [..., output_size] logits. Nothing
    recurrent depends on it, so `ntm_jax.models.api.apply` runs it once over
    all time steps after the time loop."""
    return self.output_layer(features)

  def features(self, state: NTMState, x: jax.Array):
    """One step up to the output layer: x [input_size] -> (new state,
    (features [H + R M]: the controller output and read vectors, trace))."""
    controller_input = jnp.concatenate([x, state.read_vectors.reshape(-1)])
    controller_carry, hidden = self.controller(state.controller, controller_input)
    new_state, trace = memory_step(self.config, state, self.head_layer(hidden))
    new_state = new_state._replace(controller=controller_carry)
    features = jnp.concatenate([hidden, new_state.read_vectors.reshape(-1)])
    return new_state, (features, trace)

  def init_all(self, memory_size: int, x: jax.Array):
    return self(self.initial_state(memory_size), x)




class NTM:
  """The NTM's entry in the model protocol (`ntm_jax.models.base.Model`)."""
  config_class = NTMConfig
  cell_class = NTMCell
  # On a CPU a device runs its seeds this many at a time: a group's
  # memories, activations and optimizer state then stay in the core's cache.
  cpu_seeds_per_group = 4

  @staticmethod
  def memory_rows(config: NTMConfig) -> Optional[int]:
    return config.memory_rows

  @staticmethod
  def check_memory_size(config: NTMConfig, memory_size: int) -> None:
    if memory_size < config.shift_range:
      raise ValueError(f"memory_size {memory_size} is smaller than shift_range "
                       f"{config.shift_range}")

  @staticmethod
  def forward_flops(config: NTMConfig, memory_size: int) -> dict:
    return flops.ntm_forward_flops(config, memory_size)

  @staticmethod
  def dense_flops(config: NTMConfig) -> int:
    return flops.ntm_dense_flops(config)
