"""Priority sort (Graves et al. 2014, section 4.5).

Input: `length` random `bits`-bit vectors, each with a priority drawn
uniformly from [-1, 1] on its own channel, then a delimiter. Target: the
`outputs(length)` highest-priority vectors, highest first (the paper: 20 in,
16 out; other lengths keep that ratio, rounded down). Padded to
`max_length` inputs; the mask marks the output steps.

Input channels: bits, priority, delimiter. Output: bits.
"""
import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class PrioritySortTask:
  """Sort `length` vectors by priority and emit the top ones."""
  bits: int = 8
  inputs_per_block: int = 20   # `outputs(n)` = n * outputs_per_block // inputs_per_block
  outputs_per_block: int = 16
  name: str = "priority_sort"

  def __post_init__(self):
    if self.bits < 1:
      raise ValueError(f"bits must be >= 1, got {self.bits}")
    if not 1 <= self.outputs_per_block <= self.inputs_per_block:
      raise ValueError("need 1 <= outputs_per_block <= inputs_per_block, got "
                       f"{self.outputs_per_block}, {self.inputs_per_block}")

  @property
  def input_size(self) -> int:
    return self.bits + 2

  @property
  def output_size(self) -> int:
    return self.bits

  @property
  def min_length(self) -> int:
    return -(-self.inputs_per_block // self.outputs_per_block)  # at least one output

  def outputs(self, length):
    """How many vectors are emitted for `length` inputs (int or traced)."""
    return length * self.outputs_per_block // self.inputs_per_block

  def memory_needed(self, length: int) -> int:
    return length

  def sequence_steps(self, max_length: int) -> int:
    return max_length + 1 + self.outputs(max_length)

  def sample(self, rng: jax.Array, batch_size: int, length, max_length: int):
    """A batch of sorting episodes.

    Args:
      rng: PRNG key.
      batch_size: B (static).
      length: [] or [B] number of input vectors in [min_length, max_length];
        may be traced.
      max_length: static padding length.

    Returns:
      inputs [B, T, bits + 2], targets [B, T, bits], mask [B, T] with
      T = sequence_steps(max_length).
    """
    steps = self.sequence_steps(max_length)
    data_rng, priority_rng = jax.random.split(rng)
    lengths = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (batch_size,))[:, None]
    data = jax.random.bernoulli(data_rng, 0.5, (batch_size, max_length, self.bits))
    data = data.astype(jnp.float32)
    priorities = jax.random.uniform(priority_rng, (batch_size, max_length),
                                    minval=-1.0, maxval=1.0)
    present = jnp.arange(max_length)[None, :] < lengths            # [B, max_length]
    # Highest priority first; padding vectors sort last.
    order = jnp.argsort(jnp.where(present, -priorities, jnp.inf), axis=1)
    time = jnp.arange(steps)[None, :]
    read_in = time < lengths
    delimiter = time == lengths
    out_start = lengths + 1
    out_phase = (time >= out_start) & (time < out_start + self.outputs(lengths))
    pad = ((0, 0), (0, steps - max_length))
    shown = jnp.pad(data, pad + ((0, 0),)) * read_in[..., None]
    shown_priority = jnp.pad(priorities, pad) * read_in
    inputs = jnp.concatenate([shown, shown_priority[..., None],
                              delimiter[..., None].astype(jnp.float32)], axis=-1)
    rank = jnp.clip(time - out_start, 0, max_length - 1)          # [B, T]
    source = jnp.take_along_axis(order, rank, axis=1)
    targets = jnp.take_along_axis(
        data, jnp.broadcast_to(source[..., None], (batch_size, steps, self.bits)), axis=1)
    return inputs, targets * out_phase[..., None], out_phase.astype(jnp.float32)
