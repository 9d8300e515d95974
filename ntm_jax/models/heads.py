"""Head parameters: splitting and constraining the controller's head outputs.

One affine map from the controller output produces every head's raw
parameters at once; `split_head_outputs` cuts that vector and applies the
constraints (Graves et al. 2014, section 3.3): key tanh, linear or relu,
beta softplus (or relu), gate sigmoid, shifts softmax over 2k+1, gamma 1 +
softplus (or relu), erase sigmoid, add tanh, linear or relu.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ntm_jax.config import NTMConfig


class Addressing(NamedTuple):
  """Addressing parameters of H heads."""
  key: jax.Array            # [H, M]
  key_strength: jax.Array   # [H]  beta > 0
  gate: jax.Array           # [H]  interpolation gate g in [0, 1]
  shift_weights: jax.Array  # [H, 2k+1] distribution over shifts -k..k
  sharpening: jax.Array     # [H]  gamma >= 1


class WriteVectors(NamedTuple):
  erase: jax.Array  # [W, M] in [0, 1] (sigmoid of a clipped value)
  add: jax.Array    # [W, M]


def addressing_size(config: NTMConfig) -> int:
  """Raw outputs one head's addressing needs: key, beta, g, shifts, gamma."""
  return config.memory_width + 3 + config.shift_range


def head_output_size(config: NTMConfig) -> int:
  """Length of the raw vector `split_head_outputs` expects."""
  heads = config.read_heads + config.write_heads
  return heads * addressing_size(config) + 2 * config.write_heads * config.memory_width


# The "still" head init's logits: sigmoid(-5) = 0.007 of the new weighting
# is taken; the zero shift gets 0.987 of the probability with 3 shifts.
STILL_LOGIT = 5.0


def head_bias_init(config: NTMConfig) -> jax.Array:
  """[head_output_size] initial biases of the head layer: zeros, or for
  head_init "still" a gate logit of -STILL_LOGIT and a zero-shift logit of
  +STILL_LOGIT for every read and write head (`split_head_outputs`'s layout)."""
  bias = jnp.zeros((head_output_size(config),), jnp.float32)
  if config.head_init == "zero":
    return bias
  m, a = config.memory_width, addressing_size(config)
  for head in range(config.read_heads + config.write_heads):
    gate, zero_shift = head * a + m + 1, head * a + m + 2 + config.shift_range // 2
    bias = bias.at[gate].set(-STILL_LOGIT).at[zero_shift].set(STILL_LOGIT)
  return bias


def _activate(x: jax.Array, kind: str) -> jax.Array:
  if kind == "tanh":
    return jnp.tanh(x)
  return jax.nn.relu(x) if kind == "relu" else x


def activation_grad(value: jax.Array, kind: str) -> jax.Array:
  """d _activate(x, kind) / dx, from the activation's output `value` (for
  hand-written backward passes; kept beside `_activate` so the two change
  together)."""
  if kind == "tanh":
    return 1.0 - value * value
  if kind == "relu":
    return (value > 0).astype(value.dtype)
  if kind == "linear":
    return jnp.ones_like(value)
  raise ValueError(f"no derivative for activation {kind!r}")


def _non_negative(x: jax.Array, kind: str) -> jax.Array:
  """beta and gamma - 1 (section 3.3 asks only beta >= 0, gamma >= 1)."""
  return jax.nn.relu(x) if kind == "relu" else jax.nn.softplus(x)


def non_negative_grad(value: jax.Array, kind: str) -> jax.Array:
  """d _non_negative(x, kind) / dx from its output `value`: sigmoid(x) =
  1 - exp(-softplus(x)) for softplus, the step for relu."""
  if kind == "relu":
    return activation_grad(value, "relu")
  return -jnp.expm1(-value)


def _addressing(raw: jax.Array, config: NTMConfig) -> Addressing:
  """raw: [H, addressing_size] -> constrained Addressing of H heads."""
  m, s = config.memory_width, config.shift_range
  key, beta, gate, shift_logits, gamma = jnp.split(
      raw, [m, m + 1, m + 2, m + 2 + s], axis=-1)
  if config.forward_only_shift:
    # Only shifts 0..+k: the negative shifts get probability exactly 0.
    k = s // 2
    allowed = jnp.arange(s) >= k
    shift_logits = jnp.where(allowed, shift_logits, -jnp.inf)
  return Addressing(
      key=_activate(key, config.key_activation),
      key_strength=_non_negative(beta[..., 0], config.strength_activation),
      gate=jax.nn.sigmoid(gate[..., 0]),
      shift_weights=jax.nn.softmax(shift_logits, axis=-1),
      sharpening=1.0 + _non_negative(gamma[..., 0], config.strength_activation),
  )


def split_head_outputs(raw: jax.Array, config: NTMConfig):
  """Cut and constrain the controller's raw head outputs.

  Args:
    raw: [head_output_size(config)].
    config: the NTM config.

  Returns:
    (read: Addressing of R heads, write: Addressing of W heads, WriteVectors).
  """
  r, w, m = config.read_heads, config.write_heads, config.memory_width
  a = addressing_size(config)
  raw = jnp.clip(raw, -config.head_clip, config.head_clip)
  read_raw, write_raw, erase_raw, add_raw = jnp.split(
      raw, [r * a, (r + w) * a, (r + w) * a + w * m])
  read = _addressing(read_raw.reshape(r, a), config)
  write = _addressing(write_raw.reshape(w, a), config)
  vectors = WriteVectors(
      erase=jax.nn.sigmoid(erase_raw.reshape(w, m)),
      add=_activate(add_raw.reshape(w, m), config.add_activation))
  return read, write, vectors
