"""The stacked-LSTM baseline: its cell on ONE unbatched time step, and its
entry in the model protocol (`ntm_jax.models.base.Model`).

Training and `apply` run it a layer at a time over whole sequences
(`lstm_sequence.apply_lstm`: the same numbers, faster); the cell is the
step-by-step reference.
"""
import flax.linen as nn
import jax

from ntm_jax.config import LSTMConfig
import ntm_jax.models.flops as flops
import ntm_jax.models.lstm_sequence as lstm_sequence
from ntm_jax.models.controllers import LSTMController


class LSTMCell(nn.Module):
  """One time step of the stacked-LSTM baseline."""
  config: LSTMConfig

  def setup(self):
    self.controller = LSTMController(size=self.config.size, layers=self.config.layers)
    self.output_layer = nn.Dense(self.config.output_size, name="output")

  def initial_state(self, memory_size: int, rng=None):
    del memory_size, rng  # an LSTM has no external memory
    return self.controller.initial_carry()

  def __call__(self, state, x: jax.Array):
    state, hidden = self.controller(state, x)
    return state, (self.output_layer(hidden), {})

  def init_all(self, memory_size: int, x: jax.Array):
    return self(self.initial_state(memory_size), x)


class LSTM:
  """The LSTM baseline's entry in the model protocol."""
  config_class = LSTMConfig
  cell_class = LSTMCell
  # One seed's recurrent kernels (about 1 MB per 256-unit layer) fill a
  # core's L2 cache on their own, and the time loop reads them at every
  # step: on a CPU its seeds train one at a time, faster than in groups of 2
  # or 4 (RESULTS.md, "Throughput", the LSTM baseline).
  cpu_seeds_per_group = 1

  @staticmethod
  def memory_rows(config: LSTMConfig):
    return None  # no external memory

  @staticmethod
  def check_memory_size(config: LSTMConfig, memory_size: int) -> None:
    del config, memory_size

  @staticmethod
  def sequence_logits(params, inputs: jax.Array, config: LSTMConfig) -> jax.Array:
    """[B, T, O] logits a layer at a time (the same numbers as the cell)."""
    return lstm_sequence.apply_lstm(params, inputs, config.layers, config.remat)

  @staticmethod
  def forward_flops(config: LSTMConfig, memory_size=None) -> dict:
    return flops.lstm_forward_flops(config)

  @staticmethod
  def dense_flops(config: LSTMConfig) -> int:
    return flops.lstm_dense_flops(config)
