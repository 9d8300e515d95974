"""Controllers as flax.linen modules, on one unbatched time step.

A controller maps (carry, input [I]) -> (carry, output [H]). For the NTM the
input is the external input concatenated with the previous read vectors.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}


class FeedForwardController(nn.Module):
  """A stack of dense layers; it carries no state between steps."""
  hidden_sizes: Sequence[int]
  activation: str = "tanh"

  def initial_carry(self) -> Any:
    return ()

  @nn.compact
  def __call__(self, carry: Any, x: jax.Array):
    """x: [I] -> ((), [hidden_sizes[-1]])."""
    for size in self.hidden_sizes:
      x = _ACTIVATIONS[self.activation](nn.Dense(size)(x))
    return carry, x


class LSTMController(nn.Module):
  """A stack of LSTM layers; the carry is one (c, h) pair per layer."""
  size: int
  layers: int = 1

  def initial_carry(self) -> Any:
    zeros = jnp.zeros((self.size,), jnp.float32)
    return tuple((zeros, zeros) for _ in range(self.layers))

  @nn.compact
  def __call__(self, carry: Any, x: jax.Array):
    """x: [I] -> (carry, [size])."""
    new_carry = []
    for layer in range(self.layers):
      layer_carry, x = nn.LSTMCell(self.size, name=f"lstm_{layer}")(carry[layer], x)
      new_carry.append(layer_carry)
    return tuple(new_carry), x
