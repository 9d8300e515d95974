"""Controllers as flax.linen modules, on one unbatched time step.

A controller maps (carry, input [I]) -> (carry, output [H]). For the NTM the
input is the external input concatenated with the previous read vectors.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}


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
      x = ACTIVATIONS[self.activation](nn.Dense(size)(x))
    return carry, x


def lstm_cell(gates: jax.Array, c: jax.Array):
  """An LSTM layer after its dense layer: gates [..., 4 size] in the order
  input, forget, cell, output, c [..., size] -> (new c, new h)."""
  i, f, g, o = jnp.split(gates, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  return c, jax.nn.sigmoid(o) * jnp.tanh(c)


class LSTMLayer(nn.Module):
  """One LSTM layer, its four gates in one dense layer on [x, h].

  Gates in the order input, forget, cell, output (Hochreiter & Schmidhuber
  1997, with the forget gate of Gers et al. 2000), no peepholes. One fused
  [in + size, 4 size] kernel rather than flax's eight small dense layers:
  vmapped over seeds, flax's `nn.LSTMCell` at 64 units or more ran orders
  of magnitude slower on XLA's CPU backend (jax 0.10.2; a training step that
  takes seconds did not finish in 5 minutes), the fused layer does not.
  """
  size: int
  # A forget-gate bias of 1 keeps the cell state early in training
  # (Gers et al. 2000; Jozefowicz et al. 2015).
  forget_bias_init: float = 1.0

  @nn.compact
  def __call__(self, carry, x: jax.Array):
    """carry (c [size], h [size]), x [I] -> (carry, h [size])."""
    c, h = carry
    fan_in = x.shape[-1] + self.size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (fan_in, 4 * self.size))
    bias = self.param("bias", lambda _, shape: jnp.zeros(shape).at[
        self.size:2 * self.size].set(self.forget_bias_init), (4 * self.size,))
    c, h = lstm_cell(jnp.concatenate([x, h]) @ kernel + bias, c)
    return (c, h), h


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
      layer_carry, x = LSTMLayer(self.size, name=f"lstm_{layer}")(carry[layer], x)
      new_carry.append(layer_carry)
    return tuple(new_carry), x
