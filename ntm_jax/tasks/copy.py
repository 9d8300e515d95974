"""The copy task (Graves et al. 2014, section 4.1).

Input: `length` random 8-bit vectors, then a delimiter on its own channel,
then silence while the model emits the copy. Loss counts only on the output
phase. Every batch is padded to `max_length`, so one compiled program serves
every length: a sequence of length l occupies 2l + 1 of the 2 * max_length + 1
steps, and the mask marks its l output steps.
"""
import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class CopyTask:
  """Copy `length` random `bits`-bit vectors after a delimiter."""
  bits: int = 8
  name: str = "copy"

  @property
  def input_size(self) -> int:
    return self.bits + 1  # data channels plus the delimiter channel

  @property
  def output_size(self) -> int:
    return self.bits

  min_length = 1

  def memory_needed(self, length: int) -> int:
    """Memory rows a sequence of `length` needs: one per vector."""
    return length

  def sequence_steps(self, max_length: int) -> int:
    """T, the padded number of time steps for lengths up to max_length."""
    return 2 * max_length + 1

  def sample(self, rng: jax.Array, batch_size: int, length, max_length: int):
    """A batch of copy sequences.

    Args:
      rng: PRNG key.
      batch_size: B (static).
      length: [] or [B] int, 1 <= length <= max_length; may be traced.
      max_length: static padding length.

    Returns:
      inputs [B, T, bits + 1], targets [B, T, bits], mask [B, T] (float,
      1 on the output phase), with T = 2 * max_length + 1.
    """
    steps = self.sequence_steps(max_length)
    lengths = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (batch_size,))
    data = jax.random.bernoulli(rng, 0.5, (batch_size, max_length, self.bits))
    data = data.astype(jnp.float32)
    time = jnp.arange(steps)[None, :]          # [1, T]
    lengths = lengths[:, None]                 # [B, 1]
    read_in = time < lengths                   # [B, T]
    delimiter = time == lengths
    output_phase = (time > lengths) & (time <= 2 * lengths)
    padded = jnp.pad(data, ((0, 0), (0, steps - max_length), (0, 0)))
    inputs = jnp.concatenate(
        [padded * read_in[..., None], delimiter[..., None]], axis=-1)
    # Output step t replays input step t - l - 1.
    source = jnp.clip(time - lengths - 1, 0, max_length - 1)
    targets = jnp.take_along_axis(data, jnp.broadcast_to(
        source[..., None], (batch_size, steps, self.bits)), axis=1)
    targets = targets * output_phase[..., None]
    return inputs, targets, output_phase.astype(jnp.float32)
