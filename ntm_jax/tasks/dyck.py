"""Balanced parentheses (the Dyck language) as classification.

The input is a word over "(" and ")", one character per step, then an end
marker; at the end-marker step the model answers whether the word is
balanced (every prefix has at least as many "(" as ")", and the whole word
as many of each). NTM-Lasagne used this task: the head can act as a stack
pointer, right on "(" and left on ")".

Words of length l come in three kinds, chosen at random per word:
  1/2 uniformly random balanced words (odd l: none exist, so a kind below),
  1/4 random arrangements of the two characters in equal numbers (l even)
      or off by one (l odd): mostly unbalanced,
  1/4 a balanced word with one random adjacent pair swapped: near misses.
The label is always computed from the word itself. Input channels: "(",
")", end marker. Output: one channel, the label, masked to the end step.
"""
import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class DyckTask:
  """Is a word of `length` parentheses balanced?"""
  name: str = "dyck"

  input_size = 3
  output_size = 1
  min_length = 1

  def memory_needed(self, length: int) -> int:
    # A stack deeper than l/2 can never be emptied in time.
    return length // 2 + 1

  def sequence_steps(self, max_length: int) -> int:
    return max_length + 1

  def sample(self, rng: jax.Array, batch_size: int, length, max_length: int):
    """A batch of words and labels.

    Args:
      rng: PRNG key.
      batch_size: B (static).
      length: [] or [B] word length in [1, max_length]; may be traced.
      max_length: static padding length.

    Returns:
      inputs [B, T, 3], targets [B, T, 1] (the label at the end step),
      mask [B, T] (1 at the end step), T = max_length + 1.
    """
    lengths = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (batch_size,))
    keys = jax.random.split(rng, batch_size)
    words = jax.vmap(lambda k, n: _word(k, n, max_length))(keys, lengths)  # [B, L] of +-1
    steps = self.sequence_steps(max_length)
    time = jnp.arange(steps)[None, :]
    in_word = time < lengths[:, None]
    padded = jnp.pad(words, ((0, 0), (0, 1)))
    opens = ((padded > 0) & in_word).astype(jnp.float32)
    closes = ((padded < 0) & in_word).astype(jnp.float32)
    end = (time == lengths[:, None]).astype(jnp.float32)
    inputs = jnp.stack([opens, closes, end], axis=-1)
    label = balanced(words).astype(jnp.float32)
    targets = (end * label[:, None])[..., None]
    return inputs, targets, end


def balanced(words: jax.Array) -> jax.Array:
  """[B, L] words of +1 "(", -1 ")", 0 padding -> [B] bool."""
  depth = jnp.cumsum(words, axis=1)
  return (jnp.min(depth, axis=1) >= 0) & (depth[:, -1] == 0)


def _random_arrangement(rng, ups, size, max_length):
  """+1 at `ups` random positions among the first `size`, -1 at the other
  size - ups, 0 beyond: [max_length + 1] int."""
  keys = jax.random.uniform(rng, (max_length + 1,))
  position = jnp.arange(max_length + 1)
  keys = jnp.where(position < size, keys, 2.0)
  rank = jnp.argsort(jnp.argsort(keys))
  return jnp.where(position < size, jnp.where(rank < ups, 1, -1), 0)


def _dyck_word(rng, length, max_length):
  """A uniformly random balanced word of even `length` (cycle lemma).

  Of the l + 1 rotations of an arrangement of l/2 "(" and l/2 + 1 ")",
  exactly one is a balanced word followed by ")": the one that starts just
  after the first minimum of the prefix sums.
  """
  size = length + 1
  steps = _random_arrangement(rng, length // 2, size, max_length)
  prefix = jnp.cumsum(steps)
  position = jnp.arange(max_length + 1)
  first_min = jnp.argmin(jnp.where(position < size, prefix, max_length + 2))
  rotated = steps[(first_min + 1 + position) % size]
  return jnp.where(position < length, rotated, 0)[:max_length]


def _word(rng, length, max_length):
  kind_rng, arrange_rng, dyck_rng, swap_rng, odd_rng = jax.random.split(rng, 5)
  kind = jax.random.uniform(kind_rng)
  even = length % 2 == 0
  extra = jnp.where(even, 0, jax.random.bernoulli(odd_rng).astype(jnp.int32))
  shuffled = _random_arrangement(arrange_rng, length // 2 + extra, length,
                                 max_length)[:max_length]
  dyck = _dyck_word(dyck_rng, length - length % 2, max_length)
  swap_at = jax.random.randint(swap_rng, (), 0, jnp.maximum(length - 1, 1))
  position = jnp.arange(max_length)
  swapped = jnp.where(position == swap_at, jnp.roll(dyck, -1),
                      jnp.where(position == swap_at + 1, jnp.roll(dyck, 1), dyck))
  swapped = jnp.where(even & (length >= 2), swapped, shuffled)
  dyck = jnp.where(even, dyck, shuffled)
  return jnp.where(kind < 0.5, dyck, jnp.where(kind < 0.75, shuffled, swapped))
