"""Dynamic N-grams (Graves et al. 2014, section 4.4).

Every sequence draws a fresh table of 2^(order-1) probabilities, each from
Beta(alpha, alpha), then `length` bits: the first order-1 uniformly, each
later bit 1 with the probability its previous order-1 bits index. The model
sees bit t and predicts bit t + 1; the mask marks those length - 1
predictions.

`optimal_bits` is the cost of the optimal Bayesian predictor on the same
sequences: with N0, N1 the zeros and ones that followed the current context
earlier in the sequence, it predicts a one with probability
(N1 + alpha) / (N0 + N1 + 2 alpha), the posterior mean under the Beta prior
(the paper's (N1 + 1/2) / (N1 + N0 + 1) for alpha = 1/2).
"""
import dataclasses
import math

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class NGramsTask:
  """Predict the next bit of a sequence from a random `order`-gram model."""
  order: int = 6
  alpha: float = 0.5
  name: str = "ngrams"

  def __post_init__(self):
    if self.order < 2:
      raise ValueError(f"order must be >= 2, got {self.order}")
    if self.alpha <= 0:
      raise ValueError(f"alpha must be > 0, got {self.alpha}")

  input_size = 1
  output_size = 1
  min_length = 2  # one prediction at least
  converge_metric = "excess_bits"  # bit errors mean nothing here: the bits are random

  @property
  def context_bits(self) -> int:
    return self.order - 1

  def memory_needed(self, length: int) -> int:
    return 1  # the counts fit anywhere; no length limit from memory

  def sequence_steps(self, max_length: int) -> int:
    return max_length

  def sample(self, rng: jax.Array, batch_size: int, length, max_length: int):
    """A batch of bit sequences.

    Args:
      rng: PRNG key.
      batch_size: B (static).
      length: [] or [B] bits per sequence in [2, max_length]; may be traced.
      max_length: static padding length.

    Returns:
      inputs [B, T, 1] (bit t), targets [B, T, 1] (bit t + 1), mask [B, T]
      (1 for t < length - 1), T = max_length.
    """
    contexts = 2 ** self.context_bits
    table_rng, bits_rng = jax.random.split(rng)
    tables = jax.random.beta(table_rng, self.alpha, self.alpha, (batch_size, contexts))
    uniforms = jax.random.uniform(bits_rng, (max_length, batch_size))

    def next_bit(context, inputs):
      t, u = inputs
      probability = jnp.where(t < self.context_bits, 0.5,
                              jnp.take_along_axis(tables, context[:, None], axis=1)[:, 0])
      bit = (u < probability).astype(jnp.int32)
      # The context is the last context_bits bits, oldest in the highest place.
      return ((context << 1) | bit) & (contexts - 1), bit

    _, bits = jax.lax.scan(next_bit, jnp.zeros((batch_size,), jnp.int32),
                           (jnp.arange(max_length), uniforms))
    bits = bits.T.astype(jnp.float32)                          # [B, T]
    lengths = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (batch_size,))[:, None]
    time = jnp.arange(max_length)[None, :]
    inputs = bits * (time < lengths)
    following = jnp.pad(bits[:, 1:], ((0, 0), (0, 1)))
    mask = (time < lengths - 1).astype(jnp.float32)
    return inputs[..., None], (following * mask)[..., None], mask

  def optimal_bits(self, inputs, targets, mask):
    """Cost in bits per sequence of the optimal Bayesian predictor.

    Args:
      inputs, targets: [B, T, 1] as from `sample`; mask: [B, T].

    Returns:
      [B] bits: -log2 of the probability it gives each masked target, summed.
    """
    contexts = 2 ** self.context_bits
    bits = inputs[..., 0].astype(jnp.int32)                    # bit t at step t
    following = targets[..., 0]                                 # bit t + 1
    steps = bits.shape[1]
    # Context of the prediction at step t: bits t-k+1 .. t (k = context_bits).
    context = jnp.zeros_like(bits)
    for back in range(self.context_bits):
      shifted = jnp.pad(bits, ((0, 0), (back, 0)))[:, :steps]
      context = context | (shifted << back)
    full = (jnp.arange(steps) >= self.context_bits - 1)[None, :] & (mask > 0)
    onehot = jax.nn.one_hot(context, contexts) * full[..., None]    # [B, T, C]
    # Counts before step t (exclusive cumulative sums).
    ones = jnp.cumsum(onehot * following[..., None], axis=1) - onehot * following[..., None]
    seen = jnp.cumsum(onehot, axis=1) - onehot
    ones_here = jnp.sum(ones * onehot, axis=-1)
    seen_here = jnp.sum(seen * onehot, axis=-1)
    p_one = jnp.where(full, (ones_here + self.alpha) / (seen_here + 2 * self.alpha), 0.5)
    p_target = jnp.where(following > 0.5, p_one, 1.0 - p_one)
    return -jnp.sum(jnp.log(p_target) * mask, axis=1) / math.log(2.0)
