"""A task of your own: copy a sequence back in reverse order.

Input: `length` random `bits`-bit vectors, then a delimiter on its own
channel, then silence while the model emits the vectors last first. Only
the output phase is scored. This file imports nothing private from ntm_jax:
any frozen dataclass with the members of `ntm_jax.tasks.base.Task` is a
task, named on the command line by its import path:

    PYTHONPATH=examples python -m experiments.train --task reverse_copy:ReverseCopyTask \
        --seeds 2 --steps 100 --eval_every 50 --max_length 5 --test_lengths 5,10
"""
import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class ReverseCopyTask:
  """Reverse-copy `length` random `bits`-bit vectors after a delimiter."""
  bits: int = 8

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
    """T for lengths up to max_length: read in, delimiter, write out."""
    return 2 * max_length + 1

  def sample(self, rng: jax.Array, batch_size: int, length, max_length: int):
    """A batch of reverse-copy sequences, padded to max_length.

    Args:
      rng: PRNG key.
      batch_size: B (static).
      length: [] or [B] int in [1, max_length]; may be traced.
      max_length: static padding length.

    Returns:
      inputs [B, T, bits + 1], targets [B, T, bits], mask [B, T] (float, 1
      on the output phase), T = 2 * max_length + 1. A sequence of length l
      reads in at steps 0..l-1, sees the delimiter at step l and is scored
      at steps l+1..2l, where step l+1+j must reproduce input step l-1-j.
    """
    steps = self.sequence_steps(max_length)
    lengths = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (batch_size,))[:, None]
    data = jax.random.bernoulli(rng, 0.5, (batch_size, max_length, self.bits))
    data = jnp.pad(data.astype(jnp.float32), ((0, 0), (0, steps - max_length), (0, 0)))
    time = jnp.arange(steps)[None, :]                        # [1, T]
    reading = time < lengths                                 # [B, T]
    writing = (time > lengths) & (time <= 2 * lengths)
    inputs = jnp.concatenate(
        [data * reading[..., None], (time == lengths)[..., None]], axis=-1)
    # Output step t = l + 1 + j replays input step l - 1 - j = 2l - t.
    source = jnp.clip(2 * lengths - time, 0, steps - 1)      # [B, T]
    targets = jnp.take_along_axis(data, source[..., None], axis=1)
    targets = targets * writing[..., None]
    return inputs, targets, writing.astype(jnp.float32)
