"""Associative recall (Graves et al. 2014, section 4.3).

An item is `item_vectors` random `bits`-bit vectors. The input shows
`length` items, each after an item-delimiter step; then a query item between
two query-delimiter steps; the target is the item that followed the query in
the list. With v = item_vectors, k items occupy (v + 1) k steps, the query
v + 2 and the answer v, all padded to the maximum number of items; the
mask marks the answer's v steps.

Input channels: bits, item delimiter, query delimiter. Output: bits.
Items are drawn independently; two equal items (probability about
k^2 / 2^(bits * v), 2e-4 for 20 items of 18 bits) make a query ambiguous.
"""
import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class AssociativeRecallTask:
  """Recall the item after a queried one, among `length` items."""
  bits: int = 6
  item_vectors: int = 3
  name: str = "associative_recall"

  def __post_init__(self):
    if self.bits < 1 or self.item_vectors < 1:
      raise ValueError(f"bits and item_vectors must be >= 1, got {self.bits}, "
                       f"{self.item_vectors}")

  @property
  def input_size(self) -> int:
    return self.bits + 2

  @property
  def output_size(self) -> int:
    return self.bits

  min_length = 2  # a query needs an item after it

  def memory_needed(self, length: int) -> int:
    """One row per vector shown, a generous bound (the paper's NTM used one per item)."""
    return length * self.item_vectors

  def sequence_steps(self, max_length: int) -> int:
    v = self.item_vectors
    return (v + 1) * max_length + (v + 2) + v

  def sample(self, rng: jax.Array, batch_size: int, length, max_length: int):
    """A batch of recall episodes.

    Args:
      rng: PRNG key.
      batch_size: B (static).
      length: [] or [B] number of items in [2, max_length]; may be traced.
      max_length: static maximum number of items.

    Returns:
      inputs [B, T, bits + 2], targets [B, T, bits], mask [B, T] with
      T = sequence_steps(max_length).
    """
    v = self.item_vectors
    steps = self.sequence_steps(max_length)
    item_rng, query_rng = jax.random.split(rng)
    items_count = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (batch_size,))[:, None]
    items = jax.random.bernoulli(item_rng, 0.5, (batch_size, max_length, v, self.bits))
    items = items.astype(jnp.float32)
    # The query is one of items 0 .. k-2, so that an item follows it.
    query = jnp.floor(jax.random.uniform(query_rng, (batch_size, 1))
                      * (items_count - 1)).astype(jnp.int32)
    time = jnp.arange(steps)[None, :]                     # [1, T]
    block, within = time // (v + 1), time % (v + 1)        # item slot, position in it
    listing = block < items_count                          # [B, T]
    item_delimiter = listing & (within == 0)
    item_step = listing & (within > 0)
    query_start = (v + 1) * items_count                     # first query delimiter
    query_step = (time > query_start) & (time <= query_start + v)
    query_delimiter = (time == query_start) | (time == query_start + v + 1)
    answer_start = query_start + v + 2
    answer = (time >= answer_start) & (time < answer_start + v)

    def vector(item_index, position):
      """items[b, item_index[b, t], position[b, t]] -> [B, T, bits]."""
      flat = items.reshape(batch_size, max_length * v, self.bits)
      index = jnp.clip(item_index * v + position, 0, max_length * v - 1)
      return jnp.take_along_axis(
          flat, jnp.broadcast_to(index[..., None], (batch_size, steps, self.bits)), axis=1)

    shown = vector(jnp.broadcast_to(block, (batch_size, steps)), within - 1)
    queried = vector(jnp.broadcast_to(query, (batch_size, steps)), time - query_start - 1)
    answered = vector(jnp.broadcast_to(query + 1, (batch_size, steps)), time - answer_start)
    data = shown * item_step[..., None] + queried * query_step[..., None]
    inputs = jnp.concatenate([data, item_delimiter[..., None].astype(jnp.float32),
                              query_delimiter[..., None].astype(jnp.float32)], axis=-1)
    targets = answered * answer[..., None]
    return inputs, targets, answer.astype(jnp.float32)
