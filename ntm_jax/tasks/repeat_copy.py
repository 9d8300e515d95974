"""The repeat copy task (Graves et al. 2014, section 4.2).

Input: `length` random `bits`-bit vectors, then the number of repeats r; the
target is the sequence r times over, then an end marker on its own output
channel. Two encodings of r:

  scalar: one step with the delimiter and r on the count channel,
          normalised to mean 0, variance 1 over the training repeats (the paper's);
  unary:  the count channel on for r steps, then the delimiter
          (NTM-Lasagne found this generalises to more repeats).

Input channels: bits, delimiter, count. Output channels: bits, end marker.
Every batch is padded to `max_length` and `max_repeats`, so one compiled
program serves every length and repeat count; the mask marks the l * r
output steps and the end-marker step.
"""
import dataclasses
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

ENCODINGS = ("scalar", "unary")


@dataclasses.dataclass(frozen=True)
class RepeatCopyTask:
  """Copy `length` vectors r times, r uniform in [min_repeats, max_repeats]."""
  bits: int = 8
  min_repeats: int = 1
  max_repeats: int = 10
  encoding: str = "scalar"
  # Normalisation of the scalar count; None: mean and std of the uniform
  # training repeats, so test variants with more repeats keep the training's.
  repeat_mean: Optional[float] = None
  repeat_std: Optional[float] = None
  # Extra tests at these fixed repeat counts (e.g. double the training's).
  test_repeats: Sequence[int] = (20,)
  name: str = "repeat_copy"

  def __post_init__(self):
    if self.encoding not in ENCODINGS:
      raise ValueError(f"unknown encoding {self.encoding!r}; choose one of {ENCODINGS}")
    if not 1 <= self.min_repeats <= self.max_repeats:
      raise ValueError(f"need 1 <= min_repeats <= max_repeats, got "
                       f"{self.min_repeats}, {self.max_repeats}")
    if self.bits < 1:
      raise ValueError(f"bits must be >= 1, got {self.bits}")
    object.__setattr__(self, "test_repeats", tuple(int(r) for r in self.test_repeats))
    if any(r < 1 for r in self.test_repeats):
      raise ValueError(f"test_repeats must be >= 1, got {self.test_repeats}")
    count = self.max_repeats - self.min_repeats + 1
    if self.repeat_mean is None:
      object.__setattr__(self, "repeat_mean", (self.min_repeats + self.max_repeats) / 2)
    if self.repeat_std is None:
      # A discrete uniform over `count` values has variance (count^2 - 1) / 12.
      object.__setattr__(self, "repeat_std", math.sqrt((count ** 2 - 1) / 12) or 1.0)

  @property
  def input_size(self) -> int:
    return self.bits + 2

  @property
  def output_size(self) -> int:
    return self.bits + 1

  min_length = 1

  def memory_needed(self, length: int) -> int:
    return length

  def sequence_steps(self, max_length: int) -> int:
    count_steps = self.max_repeats if self.encoding == "unary" else 0
    return max_length + count_steps + 1 + max_length * self.max_repeats + 1

  def test_variants(self) -> dict:
    """Name -> task for the extra generalisation tests (more repeats)."""
    return {f"repeats {r}": dataclasses.replace(self, min_repeats=r, max_repeats=r)
            for r in self.test_repeats}

  def sample(self, rng: jax.Array, batch_size: int, length, max_length: int):
    """A batch of repeat-copy sequences.

    Args:
      rng: PRNG key.
      batch_size: B (static).
      length: [] or [B] int in [1, max_length]; may be traced.
      max_length: static padding length.

    Returns:
      inputs [B, T, bits + 2], targets [B, T, bits + 1], mask [B, T] with
      T = sequence_steps(max_length).
    """
    steps = self.sequence_steps(max_length)
    data_rng, repeat_rng = jax.random.split(rng)
    lengths = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (batch_size,))[:, None]
    repeats = jax.random.randint(repeat_rng, (batch_size, 1), self.min_repeats,
                                 self.max_repeats + 1)
    data = jax.random.bernoulli(data_rng, 0.5, (batch_size, max_length, self.bits))
    data = data.astype(jnp.float32)
    time = jnp.arange(steps)[None, :]                         # [1, T]
    read_in = time < lengths
    if self.encoding == "unary":
      count = ((time >= lengths) & (time < lengths + repeats)).astype(jnp.float32)
      delimiter_at = lengths + repeats
    else:
      normalised = (repeats - self.repeat_mean) / self.repeat_std
      count = jnp.where(time == lengths, normalised, 0.0)
      delimiter_at = lengths
    delimiter = (time == delimiter_at).astype(jnp.float32)
    out_start = delimiter_at + 1
    out_phase = (time >= out_start) & (time < out_start + lengths * repeats)
    end = time == out_start + lengths * repeats
    padded = jnp.pad(data, ((0, 0), (0, steps - max_length), (0, 0)))
    inputs = jnp.concatenate(
        [padded * read_in[..., None], delimiter[..., None], count[..., None]], axis=-1)
    # Output step out_start + k replays input vector k mod l.
    source = jnp.where(out_phase, (time - out_start) % lengths, 0)
    replay = jnp.take_along_axis(
        data, jnp.broadcast_to(source[..., None], (batch_size, steps, self.bits)), axis=1)
    targets = jnp.concatenate(
        [replay * out_phase[..., None], end[..., None].astype(jnp.float32)], axis=-1)
    return inputs, targets, (out_phase | end).astype(jnp.float32)
