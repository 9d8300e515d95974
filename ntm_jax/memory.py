"""Reading and writing the memory matrix (Graves et al. 2014, section 3.1-3.2)."""
import jax
import jax.numpy as jnp


def read(memory: jax.Array, w: jax.Array) -> jax.Array:
  """Read vector, eq. 2: r = sum_i w[i] * memory[i].

  Args:
    memory: [N, M].
    w: [N] read weighting.

  Returns:
    [M] read vector.
  """
  return w @ memory


def write(memory: jax.Array, w: jax.Array, erase: jax.Array,
          add: jax.Array) -> jax.Array:
  """Erase then add, eqs. 3-4.

  Args:
    memory: [N, M].
    w: [N] write weighting.
    erase: [M] erase vector in [0, 1].
    add: [M] add vector.

  Returns:
    [N, M] the new memory.
  """
  erased = memory * (1.0 - jnp.outer(w, erase))
  return erased + jnp.outer(w, add)


def write_heads(memory: jax.Array, weights: jax.Array, erase: jax.Array,
                add: jax.Array) -> jax.Array:
  """Several write heads at once, as in section 3.2: every head erases, then
  every head adds, so the order of the heads does not matter.

  Args:
    memory: [N, M].
    weights: [W, N] write weightings.
    erase: [W, M] erase vectors in [0, 1].
    add: [W, M] add vectors.

  Returns:
    [N, M] the new memory. With W = 1 this equals `write`.
  """
  # An explicit product over the (few, static) heads: jnp.prod's gradient
  # is far costlier on CPU than this chain of multiplies.
  keep = 1.0 - jnp.outer(weights[0], erase[0])  # [N, M]
  for head in range(1, weights.shape[0]):
    keep = keep * (1.0 - jnp.outer(weights[head], erase[head]))
  return memory * keep + weights.T @ add
