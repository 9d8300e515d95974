"""Tests of ntm_jax.addressing: eqs. 5-9 of Graves et al. 2014 on one head."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ntm_jax.models.addressing as addressing

ATOL = 1e-6


def _floats(lo=-1.0, hi=1.0):
  return st.floats(lo, hi, width=32, allow_nan=False, allow_infinity=False)


@st.composite
def matrices(draw, rows=st.integers(2, 6), cols=st.integers(1, 4), lo=-1.0, hi=1.0):
  n, m = draw(rows), draw(cols)
  return draw(hnp.arrays(np.float32, (n, m), elements=_floats(lo, hi)))


@st.composite
def distributions(draw, n):
  """A weighting of length n: non-negative, sums to 1, may hold exact zeros."""
  raw = draw(hnp.arrays(np.float32, (n,),
                        elements=st.one_of(st.just(0.0), _floats(0.0, 1.0))))
  assume(raw.sum() > 1e-3)
  return (raw / raw.sum()).astype(np.float32)


def _assert_distribution(w, n=None):
  w = np.asarray(w)
  if n is not None:
    assert w.shape == (n,)
  assert np.all(np.isfinite(w))
  assert np.all(w >= 0.0)
  np.testing.assert_allclose(w.sum(), 1.0, atol=1e-5)


def _reference_shift(w, s):
  """Plain-Python circular convolution: out[i] = sum_d w[(i-d) mod N] s[d+k]."""
  n, k = len(w), len(s) // 2
  return [sum(float(w[(i - d) % n]) * float(s[d + k]) for d in range(-k, k + 1))
          for i in range(n)]


# --------------------------------------------------------------------------
# Hand-computed values.
# --------------------------------------------------------------------------


def test_cosine_similarity_hand_values():
  memory = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
  key = jnp.array([2.0, 0.0])
  np.testing.assert_allclose(addressing.cosine_similarity(memory, key),
                             [1.0, 0.0, 1.0 / math.sqrt(2.0), -1.0], atol=ATOL)


def test_content_weights_hand_values():
  memory = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  key = jnp.array([1.0, 0.0])
  # cosines 1, 0, 1/sqrt(2); softmax of beta * cosine with beta = 2.
  e = [math.exp(2.0 * 1.0), math.exp(0.0), math.exp(2.0 / math.sqrt(2.0))]
  expected = [x / sum(e) for x in e]  # ~ [0.5910, 0.0800, 0.3290]
  got = addressing.content_weights(memory, key, jnp.float32(2.0))
  np.testing.assert_allclose(got, expected, atol=ATOL)
  np.testing.assert_allclose(got, [0.591015, 0.0799852, 0.328999], atol=1e-5)


def test_content_weights_beta_zero_is_uniform():
  memory = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, -2.0]])
  got = addressing.content_weights(memory, jnp.array([0.3, 0.7]), jnp.float32(0.0))
  np.testing.assert_allclose(got, [0.25] * 4, atol=ATOL)


def test_interpolate_hand_values():
  got = addressing.interpolate(jnp.array([0.5, 0.3, 0.2]), jnp.array([0.0, 1.0, 0.0]),
                               jnp.float32(0.25))
  # 0.25 * [0.5, 0.3, 0.2] + 0.75 * [0, 1, 0]
  np.testing.assert_allclose(got, [0.125, 0.825, 0.05], atol=ATOL)


def test_interpolate_gate_extremes_select_one_input():
  wc, wp = jnp.array([0.7, 0.2, 0.1]), jnp.array([0.1, 0.1, 0.8])
  np.testing.assert_allclose(addressing.interpolate(wc, wp, jnp.float32(1.0)), wc)
  np.testing.assert_allclose(addressing.interpolate(wc, wp, jnp.float32(0.0)), wp)


def test_shift_hand_values():
  w = jnp.array([0.1, 0.2, 0.3, 0.4])
  s = jnp.array([0.5, 0.25, 0.25])  # shifts -1, 0, +1
  # out[i] = 0.5 w[i+1] + 0.25 w[i] + 0.25 w[i-1]
  np.testing.assert_allclose(addressing.shift(w, s), [0.225, 0.225, 0.325, 0.225],
                             atol=ATOL)


def test_shift_plus_one_moves_focus_to_next_row():
  w = jnp.array([0.0, 1.0, 0.0, 0.0, 0.0])
  np.testing.assert_allclose(addressing.shift(w, jnp.array([0.0, 0.0, 1.0])),
                             [0.0, 0.0, 1.0, 0.0, 0.0])
  np.testing.assert_allclose(addressing.shift(w, jnp.array([1.0, 0.0, 0.0])),
                             [1.0, 0.0, 0.0, 0.0, 0.0])
  # +2 with width 5 wraps around from the last row to row 0.
  w_last = jnp.array([0.0, 0.0, 0.0, 0.0, 1.0])
  np.testing.assert_allclose(
      addressing.shift(w_last, jnp.array([0.0, 0.0, 0.0, 0.0, 1.0])),
      [0.0, 1.0, 0.0, 0.0, 0.0])


def test_sharpen_hand_values():
  got = addressing.sharpen(jnp.array([0.1, 0.2, 0.3, 0.4]), jnp.float32(2.0))
  # squares 0.01, 0.04, 0.09, 0.16 over their sum 0.3
  np.testing.assert_allclose(got, [1 / 30, 4 / 30, 9 / 30, 16 / 30], rtol=1e-5)


def test_sharpen_large_gamma_hand_values():
  got = addressing.sharpen(jnp.array([0.6, 0.4, 0.0, 0.0]), jnp.float32(50.0))
  ratio = (0.4 / 0.6) ** 50  # ~1.57e-9
  np.testing.assert_allclose(got, [1.0 / (1.0 + ratio), ratio / (1.0 + ratio), 0.0, 0.0],
                             rtol=1e-5, atol=1e-12)


def test_address_hand_values():
  memory = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0]])
  key = jnp.array([1.0, 0.0])
  # cosines [1, 0, 0, -1]; beta = ln 2 -> exp = [2, 1, 1, 1/2] -> [4, 2, 2, 1] / 9
  # gate 1/2 with w_prev = e_3 -> [2/9, 1/9, 1/9, 1/18 + 1/2 = 5/9]
  # shift +1 (roll by one)     -> [5/9, 2/9, 1/9, 1/9]
  # gamma 2                    -> [25, 4, 1, 1] / 31
  got = addressing.address(memory, jnp.array([0.0, 0.0, 0.0, 1.0]), key,
                           jnp.float32(math.log(2.0)), jnp.float32(0.5),
                           jnp.array([0.0, 0.0, 1.0]), jnp.float32(2.0))
  np.testing.assert_allclose(got, [25 / 31, 4 / 31, 1 / 31, 1 / 31], atol=1e-5)


def test_shift_rejects_even_shift_width():
  with pytest.raises(ValueError, match="odd"):
    addressing.shift(jnp.array([0.25, 0.25, 0.25, 0.25]), jnp.array([0.5, 0.5]))
  with pytest.raises(ValueError):
    addressing.shift(jnp.array([0.25, 0.25, 0.25, 0.25]), jnp.full((4,), 0.25))


# --------------------------------------------------------------------------
# Properties. Hypothesis varies the shapes; one jit compile per shape is far
# cheaper than compiling every eager op per shape.
# --------------------------------------------------------------------------

_content_weights = jax.jit(addressing.content_weights)
_shift = jax.jit(addressing.shift)
_sharpen = jax.jit(addressing.sharpen)
_address = jax.jit(addressing.address)


@given(matrices(), st.data(), _floats(0.0, 50.0))
def test_content_weights_are_a_distribution(memory, data, beta):
  key = data.draw(hnp.arrays(np.float32, (memory.shape[1],), elements=_floats()))
  _assert_distribution(_content_weights(jnp.asarray(memory), jnp.asarray(key),
                                                  jnp.float32(beta)),
                       memory.shape[0])


@given(st.integers(2, 8), st.sampled_from([3, 5]), st.data())
def test_shift_of_a_distribution_is_a_distribution(n, width, data):
  w = data.draw(distributions(n))
  s = data.draw(distributions(width))
  _assert_distribution(_shift(jnp.asarray(w), jnp.asarray(s)), n)


@given(st.integers(2, 8), st.sampled_from([3, 5]), st.data())
def test_shift_one_hot_offset_equals_roll(n, width, data):
  w = data.draw(distributions(n))
  k = width // 2
  d = data.draw(st.integers(-k, k))
  one_hot = np.zeros(width, np.float32)
  one_hot[d + k] = 1.0
  got = _shift(jnp.asarray(w), jnp.asarray(one_hot))
  np.testing.assert_allclose(got, np.roll(w, d), atol=ATOL)
  np.testing.assert_allclose(got, jnp.roll(jnp.asarray(w), d), atol=ATOL)


@given(st.integers(1, 8), st.sampled_from([1, 3, 5, 7]), st.data())
def test_shift_matches_plain_python_circular_convolution(n, width, data):
  w = data.draw(hnp.arrays(np.float32, (n,), elements=_floats(-2.0, 2.0)))
  s = data.draw(hnp.arrays(np.float32, (width,), elements=_floats(-2.0, 2.0)))
  np.testing.assert_allclose(_shift(jnp.asarray(w), jnp.asarray(s)),
                             _reference_shift(w, s), atol=1e-5)


@given(st.integers(2, 8), st.data(), _floats(1.0, 100.0))
def test_sharpen_is_a_distribution(n, data, gamma):
  w = data.draw(distributions(n))
  _assert_distribution(_sharpen(jnp.asarray(w), jnp.float32(gamma)), n)


@given(st.integers(2, 8), st.data())
def test_sharpen_gamma_one_is_identity(n, data):
  w = data.draw(distributions(n))
  np.testing.assert_allclose(_sharpen(jnp.asarray(w), jnp.float32(1.0)), w,
                             atol=1e-5)


@given(st.integers(2, 8), st.data(), _floats(1.0, 20.0))
def test_sharpen_matches_power_reference(n, data, gamma):
  w = data.draw(distributions(n)).astype(np.float64)
  assume(w.max() > 1e-3)
  powered = w ** float(gamma)
  np.testing.assert_allclose(_sharpen(jnp.asarray(w, jnp.float32),
                                                jnp.float32(gamma)),
                             powered / powered.sum(), atol=1e-4)


@given(matrices(cols=st.integers(2, 4)), st.data(), _floats(0.0, 50.0),
       _floats(0.0, 1.0), st.sampled_from([3, 5]), _floats(1.0, 60.0))
def test_address_is_a_distribution(memory, data, beta, gate, width, gamma):
  n, m = memory.shape
  key = data.draw(hnp.arrays(np.float32, (m,), elements=_floats()))
  w_prev = data.draw(distributions(n))
  s = data.draw(distributions(width))
  got = _address(jnp.asarray(memory), jnp.asarray(w_prev), jnp.asarray(key),
                           jnp.float32(beta), jnp.float32(gate), jnp.asarray(s),
                           jnp.float32(gamma))
  _assert_distribution(got, n)


@given(matrices(rows=st.integers(2, 6), cols=st.integers(3, 5)), st.data())
def test_content_addressing_focuses_on_row_equal_to_key_as_beta_grows(memory, data):
  n = memory.shape[0]
  idx = data.draw(st.integers(0, n - 1))
  key = memory[idx].astype(np.float64)
  norms = np.linalg.norm(memory.astype(np.float64), axis=1)
  assume(norms[idx] > 0.5)
  others = [i for i in range(n) if i != idx]
  cos = [memory[i].astype(np.float64) @ key / (norms[i] * norms[idx] + 1e-12)
         for i in others]
  assume(max(cos) < 0.9)  # the key's own row is the unique best match
  memory_j, key_j = jnp.asarray(memory), jnp.asarray(memory[idx])
  weights = [np.asarray(_content_weights(memory_j, key_j, jnp.float32(b)))
             for b in (1.0, 10.0, 100.0)]
  focus = [w[idx] for w in weights]
  assert focus[0] <= focus[1] + 1e-6 <= focus[2] + 2e-6
  assert int(np.argmax(weights[-1])) == idx
  assert focus[-1] > 0.99


# --------------------------------------------------------------------------
# NaN safety, jit and vmap.
# --------------------------------------------------------------------------

_BASE = dict(
    memory=np.array([[0.5, -0.2, 0.1], [0.3, 0.3, 0.9], [-0.4, 0.8, 0.0],
                     [0.1, 0.1, -0.7]], np.float32),
    w_prev=np.array([0.1, 0.2, 0.3, 0.4], np.float32),
    key=np.array([0.2, -0.5, 0.4], np.float32),
    beta=np.float32(3.0),
    gate=np.float32(0.6),
    shift_weights=np.array([0.2, 0.5, 0.3], np.float32),
    gamma=np.float32(2.0),
)
_ORDER = ("memory", "w_prev", "key", "beta", "gate", "shift_weights", "gamma")

_DEGENERATE = {
    "all_zero_memory": dict(memory=np.zeros((4, 3), np.float32)),
    "zero_memory_row": dict(memory=_BASE["memory"] * np.array([[1], [0], [1], [1]],
                                                                np.float32)),
    "zero_key": dict(key=np.zeros(3, np.float32)),
    "exact_zeros_in_w": dict(w_prev=np.array([0.0, 1.0, 0.0, 0.0], np.float32),
                             gate=np.float32(0.0),
                             shift_weights=np.array([0.0, 1.0, 0.0], np.float32)),
    "gamma_50": dict(gamma=np.float32(50.0)),
    "gamma_100": dict(gamma=np.float32(100.0)),
    "everything_at_once": dict(memory=np.zeros((4, 3), np.float32),
                               key=np.zeros(3, np.float32),
                               w_prev=np.array([0.0, 0.0, 1.0, 0.0], np.float32),
                               gate=np.float32(0.0),
                               shift_weights=np.array([0.0, 0.0, 1.0], np.float32),
                               gamma=np.float32(100.0)),
}


# Jitted once per shape: much cheaper than op-by-op eager differentiation.
_address_jacobian = jax.jit(jax.jacrev(addressing.address, argnums=tuple(range(7))))
_stage_jacobians = jax.jit(lambda memory, w_prev, key, beta, gate, s, gamma: (
    jax.jacrev(addressing.content_weights, argnums=(0, 1, 2))(memory, key, beta),
    jax.jacrev(addressing.sharpen, argnums=(0, 1))(w_prev, gamma),
    jax.jacrev(addressing.shift, argnums=(0, 1))(w_prev, s),
    jax.jacrev(addressing.interpolate, argnums=(0, 1, 2))(w_prev, w_prev, gate)))


def _args(case):
  values = dict(_BASE, **_DEGENERATE[case])
  return tuple(jnp.asarray(values[name]) for name in _ORDER)


def _all_finite(tree):
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(tree))


@pytest.mark.parametrize("case", sorted(_DEGENERATE))
def test_address_values_and_gradients_finite_on_degenerate_inputs(case):
  args = _args(case)
  w = addressing.address(*args)
  _assert_distribution(w, 4)
  # A non-uniform readout so the gradient is not trivially zero.
  readout = jnp.array([1.0, -2.0, 3.0, 0.5])
  grads = jax.grad(lambda *a: addressing.address(*a) @ readout,
                   argnums=tuple(range(7)))(*args)
  assert len(grads) == 7
  for name, g, a in zip(_ORDER, grads, args):
    assert g.shape == a.shape, name
    assert _all_finite(g), f"non-finite gradient w.r.t. {name} in case {case}: {g}"
  # Full Jacobians too: every output coordinate, every input.
  jacobians = _address_jacobian(*args)
  assert _all_finite(jacobians)
  assert [j.shape for j in jacobians] == [(4,) + a.shape for a in args]


@pytest.mark.parametrize("case", sorted(_DEGENERATE))
def test_stage_gradients_finite_on_degenerate_inputs(case):
  for stage, jacobians in zip(("content", "sharpen", "shift", "interpolate"),
                              _stage_jacobians(*_args(case))):
    assert _all_finite(jacobians), f"non-finite {stage} Jacobian in case {case}"



def test_zero_key_gives_uniform_content_weights():
  memory = jnp.asarray(_BASE["memory"])
  np.testing.assert_allclose(
      addressing.content_weights(memory, jnp.zeros(3), jnp.float32(5.0)), [0.25] * 4,
      atol=ATOL)


def test_all_zero_memory_gives_uniform_content_weights():
  np.testing.assert_allclose(
      addressing.content_weights(jnp.zeros((4, 3)), jnp.asarray(_BASE["key"]),
                                 jnp.float32(5.0)), [0.25] * 4, atol=ATOL)


def test_sharpen_of_one_hot_at_large_gamma_stays_one_hot():
  w = jnp.array([0.0, 1.0, 0.0, 0.0])
  for gamma in (50.0, 100.0):
    np.testing.assert_allclose(addressing.sharpen(w, jnp.float32(gamma)), w, atol=1e-7)


def test_address_jit_matches_eager():
  args = _args("gamma_50")
  np.testing.assert_allclose(jax.jit(addressing.address)(*args),
                             addressing.address(*args), atol=1e-6)
  grads = jax.jit(jax.grad(lambda *a: addressing.address(*a)[0],
                           argnums=tuple(range(7))))(*args)
  assert _all_finite(grads)


def test_address_vmap_over_heads_matches_loop():
  rng = np.random.default_rng(0)
  h = 3
  memory = jnp.asarray(_BASE["memory"])
  w_prev = jnp.asarray(rng.dirichlet(np.ones(4), size=h), jnp.float32)
  key = jnp.asarray(rng.normal(size=(h, 3)), jnp.float32)
  beta = jnp.array([0.5, 5.0, 50.0])
  gate = jnp.array([0.0, 0.5, 1.0])
  s = jnp.asarray(rng.dirichlet(np.ones(3), size=h), jnp.float32)
  gamma = jnp.array([1.0, 3.0, 100.0])
  batched = jax.vmap(addressing.address, in_axes=(None, 0, 0, 0, 0, 0, 0))(
      memory, w_prev, key, beta, gate, s, gamma)
  assert batched.shape == (h, 4)
  for i in range(h):
    np.testing.assert_allclose(
        batched[i],
        addressing.address(memory, w_prev[i], key[i], beta[i], gate[i], s[i], gamma[i]),
        atol=1e-6)


def test_address_vmap_of_grad_is_finite():
  args = [jnp.stack([a, a]) for a in _args("everything_at_once")]
  grads = jax.jit(jax.vmap(jax.grad(lambda *a: addressing.address(*a)[2],
                                    argnums=tuple(range(7)))))(*args)
  assert _all_finite(grads)
  assert grads[0].shape == (2, 4, 3)
