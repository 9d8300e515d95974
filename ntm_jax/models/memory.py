"""Reading and writing the memory matrix (Graves et al. 2014, section 3.1-3.2).

Layout. The paper's memory M_t is N x M, a row per location; the functions
without a suffix take it that way, `memory: [N, M]`. The NTM cell keeps it
transposed, `columns: [M, N]`, and uses the `*_columns` functions: then the
N locations (128 in the paper) are the minor axis and fill whole vector
lanes, where rows of M = 20 floats leave AVX-512's 16-float lanes part
empty. On the copy task's training step this layout ran 1.4x faster on a
2-core CPU (RESULTS.md, "Throughput", the table of what made the NTM step
fast); the mathematics is the same.
"""
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


def read_heads_columns(columns: jax.Array, weights: jax.Array) -> jax.Array:
  """Eq. 2 for R read heads on the memory stored by columns.

  Args:
    columns: [M, N].
    weights: [R, N] read weightings.

  Returns:
    [R, M] read vectors.
  """
  return weights @ columns.T


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
  return write_heads_columns(memory.T, weights, erase, add).T


def write_heads_columns(columns: jax.Array, weights: jax.Array, erase: jax.Array,
                        add: jax.Array) -> jax.Array:
  """`write_heads` on the memory stored by columns: columns [M, N] -> [M, N]."""
  # An explicit product over the (few, static) heads: jnp.prod's gradient
  # is far costlier on CPU than this chain of multiplies.
  keep = 1.0 - jnp.outer(erase[0], weights[0])  # [M, N]
  for head in range(1, weights.shape[0]):
    keep = keep * (1.0 - jnp.outer(erase[head], weights[head]))
  return columns * keep + add.T @ weights
