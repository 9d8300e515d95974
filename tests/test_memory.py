"""Tests of ntm_jax.memory: reading (eq. 2) and erase-then-add writing (eqs. 3-4)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ntm_jax.models.memory as memory


def test_read_is_weighted_sum_of_rows_hand_values():
  m = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
  w = jnp.array([0.5, 0.25, 0.25])
  # 0.5 [1, 2] + 0.25 [3, 4] + 0.25 [5, 6] = [2.5, 3.5]
  np.testing.assert_allclose(memory.read(m, w), [2.5, 3.5], atol=1e-6)


@pytest.mark.parametrize("row", [0, 1, 2])
def test_read_with_one_hot_weighting_returns_that_row(row):
  m = jnp.array([[1.0, -2.0, 0.5], [3.0, 4.0, -1.5], [5.0, 6.0, 7.0]])
  np.testing.assert_array_equal(memory.read(m, jax.nn.one_hot(row, 3)), m[row])


def test_write_erase_then_add_hand_values():
  m = jnp.array([[1.0, 2.0], [3.0, 4.0]])
  w = jnp.array([1.0, 0.5])
  erase = jnp.array([0.5, 1.0])
  add = jnp.array([1.0, -1.0])
  # erased: row0 * (1 - 1 * [0.5, 1]) = [0.5, 0]; row1 * (1 - 0.5 * [0.5, 1]) = [2.25, 2]
  # add:    row0 + 1 * [1, -1] = [1.5, -1];      row1 + 0.5 * [1, -1] = [2.75, 1.5]
  np.testing.assert_allclose(memory.write(m, w, erase, add), [[1.5, -1.0], [2.75, 1.5]],
                             atol=1e-6)


def test_write_erases_before_adding():
  # Full erase and an add on the same row: the row ends up equal to the add
  # vector (add-then-erase would give zeros).
  m = jnp.array([[7.0, -3.0], [1.0, 1.0]])
  got = memory.write(m, jnp.array([1.0, 0.0]), jnp.ones(2), jnp.array([0.25, 0.75]))
  np.testing.assert_allclose(got, [[0.25, 0.75], [1.0, 1.0]], atol=1e-6)


@pytest.mark.parametrize("row", [0, 2, 3])
def test_full_erase_without_add_clears_exactly_the_addressed_row(row):
  m = jnp.arange(1.0, 13.0).reshape(4, 3)
  got = np.asarray(memory.write(m, jax.nn.one_hot(row, 4), jnp.ones(3), jnp.zeros(3)))
  np.testing.assert_array_equal(got[row], np.zeros(3))
  others = [i for i in range(4) if i != row]
  np.testing.assert_array_equal(got[others], np.asarray(m)[others])


def test_zero_erase_and_zero_add_leave_memory_unchanged():
  rng = np.random.default_rng(0)
  m = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
  w = jnp.asarray(rng.dirichlet(np.ones(5)), jnp.float32)
  np.testing.assert_array_equal(memory.write(m, w, jnp.zeros(3), jnp.zeros(3)), m)


def test_zero_weighting_leaves_memory_unchanged():
  m = jnp.arange(6.0).reshape(3, 2)
  np.testing.assert_array_equal(
      memory.write(m, jnp.zeros(3), jnp.array([0.9, 0.4]), jnp.array([5.0, -5.0])), m)


def _numpy_write(m, w, e, a):
  out = np.empty_like(m, dtype=np.float64)
  for i in range(m.shape[0]):
    for j in range(m.shape[1]):
      out[i, j] = m[i, j] * (1.0 - w[i] * e[j]) + w[i] * a[j]
  return out


_read = jax.jit(memory.read)  # one compile per hypothesis shape, not one per op
_write = jax.jit(memory.write)


@given(st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_read_and_write_match_numpy_reference(n, m_width, seed):
  rng = np.random.default_rng(seed)
  m = rng.normal(size=(n, m_width)).astype(np.float32)
  w = rng.dirichlet(np.ones(n)).astype(np.float32)
  e = rng.uniform(size=m_width).astype(np.float32)
  a = rng.uniform(-1, 1, size=m_width).astype(np.float32)
  expected_read = sum(float(w[i]) * m[i].astype(np.float64) for i in range(n))
  np.testing.assert_allclose(_read(jnp.asarray(m), jnp.asarray(w)), expected_read,
                             atol=1e-5)
  np.testing.assert_allclose(
      _write(jnp.asarray(m), jnp.asarray(w), jnp.asarray(e), jnp.asarray(a)),
      _numpy_write(m, w, e, a), atol=1e-5)


def test_write_is_jittable_and_differentiable():
  m = jnp.arange(6.0).reshape(3, 2)
  w, e, a = jnp.array([0.2, 0.3, 0.5]), jnp.array([0.5, 0.1]), jnp.array([1.0, -1.0])
  np.testing.assert_allclose(jax.jit(memory.write)(m, w, e, a), memory.write(m, w, e, a),
                             atol=1e-6)
  grads = jax.grad(lambda *args: memory.write(*args).sum(), argnums=(0, 1, 2, 3))(m, w, e, a)
  # d/d add[j] of sum(write) = sum_i w[i] = 1 for every j.
  np.testing.assert_allclose(grads[3], [1.0, 1.0], atol=1e-6)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_write_heads_erases_with_every_head_then_adds_every_head():
  mem = jnp.array([[1.0, 2.0], [3.0, 4.0]])
  weights = jnp.array([[1.0, 0.0], [0.5, 0.5]])
  erase = jnp.array([[1.0, 0.0], [0.5, 1.0]])
  add = jnp.array([[10.0, 20.0], [2.0, 4.0]])
  # Row 0: keep (1-1)(1-0.25)=0, (1-0)(1-0.5)=0.5 -> [0, 1] + 10+1, 20+2.
  # Row 1: keep (1-0)(1-0.25)=0.75, (1-0)(1-0.5)=0.5 -> [2.25, 2] + 1, 2.
  expected = jnp.array([[11.0, 23.0], [3.25, 4.0]])
  np.testing.assert_allclose(memory.write_heads(mem, weights, erase, add), expected)
  np.testing.assert_allclose(memory.write_heads(mem, weights[::-1], erase[::-1], add[::-1]),
                             expected)


def test_write_heads_with_one_head_equals_write():
  mem = jnp.arange(6.0).reshape(3, 2)
  w, e, a = jnp.array([0.2, 0.5, 0.3]), jnp.array([0.3, 0.9]), jnp.array([1.0, -1.0])
  np.testing.assert_allclose(memory.write_heads(mem, w[None], e[None], a[None]),
                             memory.write(mem, w, e, a), rtol=1e-6)
