"""NTM addressing (Graves, Wayne & Danihelka 2014, section 3.3, Figure 2).

Every function works on ONE unbatched head: memory `[N, M]`, weightings `[N]`.
The `*_columns` variants take the memory transposed, `columns: [M, N]`, the
layout the NTM cell keeps (see `ntm_jax.memory`); the `[N, M]` functions
are those variants applied to `memory.T`.
Batches, heads and seeds come from `jax.vmap`. All functions are safe under
`jit`, `vmap` and `grad`: values and gradients stay finite for zero memory
rows, a zero key, exact zeros in a weighting and sharpening up to gamma >= 50.
"""
import jax
import jax.numpy as jnp

# Added under the square root of each norm: sqrt(|x|^2 + eps) has a finite
# gradient at x = 0, where |x| itself does not (NaN source #1 in earlier ports).
NORM_EPS = 1e-8
# Added to w before log in sharpening: log(0) is -inf and its gradient infinite.
SHARPEN_EPS = 1e-8


def cosine_similarity(memory: jax.Array, key: jax.Array) -> jax.Array:
  """Cosine similarity of `key` [M] with every row of `memory` [N, M] -> [N]."""
  return cosine_similarity_columns(memory.T, key)


def cosine_similarity_columns(columns: jax.Array, key: jax.Array) -> jax.Array:
  """`cosine_similarity` on the memory stored by columns, `columns`: [M, N]."""
  dots = key @ columns
  location_norms = jnp.sqrt(jnp.sum(columns * columns, axis=0) + NORM_EPS)
  key_norm = jnp.sqrt(jnp.sum(key * key) + NORM_EPS)
  return dots / (location_norms * key_norm)


def content_weights(memory: jax.Array, key: jax.Array,
                    beta: jax.Array) -> jax.Array:
  """Content addressing, eqs. 5-6.

  Args:
    memory: [N, M].
    key: [M] the key vector k_t.
    beta: [] key strength, > 0.

  Returns:
    [N] softmax over rows of beta * cosine_similarity(key, row).
  """
  return content_weights_columns(memory.T, key, beta)


def content_weights_columns(columns: jax.Array, key: jax.Array,
                            beta: jax.Array) -> jax.Array:
  """`content_weights` on the memory stored by columns, `columns`: [M, N]."""
  return jax.nn.softmax(beta * cosine_similarity_columns(columns, key))


def interpolate(w_content: jax.Array, w_prev: jax.Array,
                gate: jax.Array) -> jax.Array:
  """Interpolation, eq. 7: gate * w_content + (1 - gate) * w_prev.

  Args:
    w_content: [N] content weighting.
    w_prev: [N] the head's weighting at the previous step.
    gate: [] interpolation gate g in [0, 1].
  """
  return gate * w_content + (1.0 - gate) * w_prev


def shift(w: jax.Array, shift_weights: jax.Array) -> jax.Array:
  """Circular convolution, eq. 8.

  `shift_weights` has odd length 2k + 1 and index j means a shift by j - k:
  out[i] = sum_d w[(i - d) mod N] * shift_weights[d + k], so a one-hot on +1
  equals `jnp.roll(w, 1)`.

  Args:
    w: [N] weighting.
    shift_weights: [2k + 1] distribution over shifts -k..k (k static).

  Returns:
    [N] shifted weighting.
  """
  width = shift_weights.shape[-1]
  if width % 2 != 1:
    raise ValueError(f"shift_weights must have odd length 2k+1, got {width}")
  k = width // 2
  # 2k+1 static rolls and a weighted sum: cheaper on CPU than a gather or an
  # [N, N] circulant matmul for the small k NTMs use.
  rolled = jnp.stack([jnp.roll(w, d) for d in range(-k, k + 1)])  # [2k+1, N]
  return shift_weights @ rolled


def sharpen(w: jax.Array, gamma: jax.Array) -> jax.Array:
  """Sharpening, eq. 9: w**gamma / sum(w**gamma), gamma >= 1.

  Computed as softmax(gamma * log(w + eps)): log space never overflows for
  large gamma and has finite gradients where w is exactly 0.

  Args:
    w: [N] non-negative weighting.
    gamma: [] sharpening exponent >= 1.
  """
  return jax.nn.softmax(gamma * jnp.log(w + SHARPEN_EPS))


def address(memory: jax.Array, w_prev: jax.Array, key: jax.Array,
            beta: jax.Array, gate: jax.Array, shift_weights: jax.Array,
            gamma: jax.Array) -> jax.Array:
  """The full addressing pipeline of Figure 2 for one head.

  Args:
    memory: [N, M].
    w_prev: [N] the head's previous weighting.
    key: [M]; beta: []; gate: []; shift_weights: [2k+1]; gamma: [].

  Returns:
    [N] the new weighting (non-negative, sums to 1).
  """
  return address_columns(memory.T, w_prev, key, beta, gate, shift_weights, gamma)


def address_columns(columns: jax.Array, w_prev: jax.Array, key: jax.Array,
                    beta: jax.Array, gate: jax.Array, shift_weights: jax.Array,
                    gamma: jax.Array) -> jax.Array:
  """`address` on the memory stored by columns, `columns`: [M, N] (the
  layout the NTM cell keeps; see `ntm_jax.memory`)."""
  w_content = content_weights_columns(columns, key, beta)
  w_gated = interpolate(w_content, w_prev, gate)
  return sharpen(shift(w_gated, shift_weights), gamma)
