"""Tests of ntm_jax.heads: raw head-output layout and its constraints."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ntm_jax.models.heads as heads
from ntm_jax.config import NTMConfig


def _config(**kw):
  base = dict(input_size=3, output_size=2, controller_size=16, memory_rows=8, memory_width=4)
  base.update(kw)
  return NTMConfig(**base)


@pytest.mark.parametrize("kw, expected", [
    # Paper defaults M=20, shifts 3, 1 read + 1 write head:
    # 2 heads * (20 key + beta + gate + 3 shifts + gamma) + 1 * (20 erase + 20 add)
    (dict(memory_width=20), 2 * 26 + 40),
    # M=4, 2 read + 3 write heads, shifts 3: 5 * (4 + 3 + 3) + 3 * 2 * 4
    (dict(read_heads=2, write_heads=3), 50 + 24),
    # M=4, shifts 5, 1 + 1: 2 * (4 + 3 + 5) + 2 * 4
    (dict(shift_range=5), 24 + 8),
])
def test_head_output_size_matches_config_arithmetic(kw, expected):
  assert heads.head_output_size(_config(**kw)) == expected


def test_split_head_outputs_shapes_for_several_heads():
  c = _config(read_heads=2, write_heads=3, shift_range=5)
  read, write, vectors = heads.split_head_outputs(
      jnp.zeros(heads.head_output_size(c)), c)
  assert read.key.shape == (2, 4) and write.key.shape == (3, 4)
  assert read.key_strength.shape == (2,) and write.key_strength.shape == (3,)
  assert read.gate.shape == (2,) and write.gate.shape == (3,)
  assert read.shift_weights.shape == (2, 5) and write.shift_weights.shape == (3, 5)
  assert read.sharpening.shape == (2,) and write.sharpening.shape == (3,)
  assert vectors.erase.shape == (3, 4) and vectors.add.shape == (3, 4)


def _softplus(x):
  return float(np.log1p(np.exp(x)))


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_split_head_outputs_layout_with_linear_activations():
  # Documented layout: per head [key M, beta, gate, shifts S, gamma], read heads
  # first, then write heads, then every erase vector, then every add vector.
  # M=2, S=3: 8 per head; 1 read + 1 write head; erase 2; add 2 -> 20.
  c = _config(memory_width=2, key_activation="linear", add_activation="linear")
  assert heads.head_output_size(c) == 20
  raw = jnp.arange(20, dtype=jnp.float32) / 10.0  # 0.0, 0.1, ..., 1.9
  read, write, vectors = heads.split_head_outputs(raw, c)
  np.testing.assert_allclose(read.key, [[0.0, 0.1]], atol=1e-6)
  np.testing.assert_allclose(read.key_strength, [_softplus(0.2)], atol=1e-6)
  np.testing.assert_allclose(read.gate, _sigmoid([0.3]), atol=1e-6)
  e = np.exp([0.4, 0.5, 0.6])
  np.testing.assert_allclose(read.shift_weights, [e / e.sum()], atol=1e-6)
  np.testing.assert_allclose(read.sharpening, [1.0 + _softplus(0.7)], atol=1e-6)
  np.testing.assert_allclose(write.key, [[0.8, 0.9]], atol=1e-6)
  np.testing.assert_allclose(write.key_strength, [_softplus(1.0)], atol=1e-6)
  np.testing.assert_allclose(write.gate, _sigmoid([1.1]), atol=1e-6)
  e = np.exp([1.2, 1.3, 1.4])
  np.testing.assert_allclose(write.shift_weights, [e / e.sum()], atol=1e-6)
  np.testing.assert_allclose(write.sharpening, [1.0 + _softplus(1.5)], atol=1e-6)
  np.testing.assert_allclose(vectors.erase, [_sigmoid([1.6, 1.7])], atol=1e-6)
  np.testing.assert_allclose(vectors.add, [[1.8, 1.9]], atol=1e-6)


def test_tanh_activations_apply_to_key_and_add():
  c = _config(memory_width=2)
  raw = jnp.arange(20, dtype=jnp.float32) / 10.0
  read, write, vectors = heads.split_head_outputs(raw, c)
  np.testing.assert_allclose(read.key, [np.tanh([0.0, 0.1])], atol=1e-6)
  np.testing.assert_allclose(write.key, [np.tanh([0.8, 0.9])], atol=1e-6)
  np.testing.assert_allclose(vectors.add, [np.tanh([1.8, 1.9])], atol=1e-6)


_split = jax.jit(heads.split_head_outputs, static_argnums=1)

_CONSTRAINT_CONFIGS = [
    _config(),
    _config(read_heads=2, write_heads=2, shift_range=5),
    _config(forward_only_shift=True, shift_range=5),
]


@given(st.sampled_from(_CONSTRAINT_CONFIGS), st.data())
def test_split_head_outputs_constraints_hold_for_any_raw_vector(c, data):
  raw = data.draw(hnp.arrays(
      np.float32, (heads.head_output_size(c),),
      elements=st.floats(-1e4, 1e4, width=32, allow_nan=False, allow_infinity=False)))
  read, write, vectors = _split(jnp.asarray(raw), c)
  for a in (read, write):
    assert np.all(np.asarray(a.key_strength) > 0.0)              # beta > 0
    gate = np.asarray(a.gate)
    # (0, 1) mathematically; sigmoid(20) rounds to exactly 1.0 in float32.
    assert np.all(gate > 0.0) and np.all(gate <= 1.0)
    s = np.asarray(a.shift_weights)
    assert np.all(s >= 0.0)
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(np.asarray(a.sharpening) >= 1.0)              # gamma >= 1
    assert np.all(np.abs(np.asarray(a.key)) <= 1.0)             # tanh key
  erase = np.asarray(vectors.erase)
  assert np.all(erase > 0.0) and np.all(erase <= 1.0)
  assert np.all(np.abs(np.asarray(vectors.add)) <= 1.0)         # tanh add
  for leaf in (*read, *write, *vectors):
    assert np.all(np.isfinite(np.asarray(leaf)))


@given(st.data())
def test_constraints_are_strict_for_moderate_raw_values(data):
  c = _config()
  raw = data.draw(hnp.arrays(np.float32, (heads.head_output_size(c),),
                             elements=st.floats(-4.0, 4.0, width=32)))
  read, write, vectors = _split(jnp.asarray(raw), c)
  for a in (read, write):
    assert np.all((np.asarray(a.gate) > 0.0) & (np.asarray(a.gate) < 1.0))
    assert np.all(np.abs(np.asarray(a.key)) < 1.0)
    assert np.all(np.asarray(a.shift_weights) > 0.0)
  assert np.all((np.asarray(vectors.erase) > 0.0) & (np.asarray(vectors.erase) < 1.0))


@pytest.mark.parametrize("shift_range", [3, 5, 7])
def test_forward_only_shift_gives_zero_probability_to_negative_shifts(shift_range):
  c = _config(forward_only_shift=True, shift_range=shift_range, read_heads=2)
  rng = np.random.default_rng(shift_range)
  raw = jnp.asarray(rng.normal(scale=5.0, size=heads.head_output_size(c)), jnp.float32)
  # Make the negative shifts' logits the largest: they must still get 0.
  a, k = heads.addressing_size(c), shift_range // 2
  for h in range(3):  # 2 read heads + 1 write head
    start = h * a + c.memory_width + 2
    raw = raw.at[start:start + k].set(15.0)
  read, write, _ = heads.split_head_outputs(raw, c)
  for s in (np.asarray(read.shift_weights), np.asarray(write.shift_weights)):
    assert np.all(s[:, :k] == 0.0)
    assert np.all(s[:, k:] > 0.0)
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, atol=1e-6)


def test_forward_only_shift_zero_logits_split_evenly_over_allowed_shifts():
  c = _config(forward_only_shift=True, shift_range=5)
  read, write, _ = heads.split_head_outputs(jnp.zeros(heads.head_output_size(c)), c)
  np.testing.assert_allclose(read.shift_weights, [[0, 0, 1 / 3, 1 / 3, 1 / 3]], atol=1e-7)
  np.testing.assert_allclose(write.shift_weights, [[0, 0, 1 / 3, 1 / 3, 1 / 3]], atol=1e-7)


def test_raw_values_beyond_head_clip_are_clipped():
  c = _config(memory_width=2, key_activation="linear", add_activation="linear",
              head_clip=5.0)
  big = jnp.full((20,), 1000.0)
  small = jnp.full((20,), -1000.0)
  read, write, vectors = heads.split_head_outputs(big, c)
  np.testing.assert_allclose(read.key, [[5.0, 5.0]])
  np.testing.assert_allclose(write.key, [[5.0, 5.0]])
  np.testing.assert_allclose(vectors.add, [[5.0, 5.0]])
  np.testing.assert_allclose(read.key_strength, [_softplus(5.0)], rtol=1e-6)
  np.testing.assert_allclose(read.sharpening, [1.0 + _softplus(5.0)], rtol=1e-6)
  np.testing.assert_allclose(read.gate, _sigmoid([5.0]), rtol=1e-6)
  np.testing.assert_allclose(vectors.erase, [_sigmoid([5.0, 5.0])], rtol=1e-6)
  read, write, vectors = heads.split_head_outputs(small, c)
  np.testing.assert_allclose(read.key, [[-5.0, -5.0]])
  np.testing.assert_allclose(vectors.add, [[-5.0, -5.0]])
  np.testing.assert_allclose(write.key_strength, [_softplus(-5.0)], rtol=1e-5)
  np.testing.assert_allclose(write.gate, _sigmoid([-5.0]), rtol=1e-5)
  # Values inside the clip are untouched.
  inside = jnp.full((20,), 4.5)
  read, _, vectors = heads.split_head_outputs(inside, c)
  np.testing.assert_allclose(read.key, [[4.5, 4.5]])
  np.testing.assert_allclose(vectors.add, [[4.5, 4.5]])


def test_default_head_clip_is_20_and_clips():
  c = _config(key_activation="linear")
  assert c.head_clip == 20.0
  read, _, _ = heads.split_head_outputs(jnp.full((heads.head_output_size(c),), 1e6), c)
  np.testing.assert_allclose(read.key, np.full((1, 4), 20.0))
  assert np.all(np.isfinite(np.asarray(read.key_strength)))


def test_forward_only_shift_has_finite_gradients():
  # The masked logits are -inf; no NaN may leak into the backward pass.
  c = _config(forward_only_shift=True, shift_range=5)
  raw = jnp.linspace(-30.0, 30.0, heads.head_output_size(c))

  def loss(r):
    read, write, vectors = heads.split_head_outputs(r, c)
    weights = jnp.arange(1.0, 6.0)
    return ((read.shift_weights @ weights).sum() + (write.shift_weights @ weights).sum()
            + read.key_strength.sum() + vectors.erase.sum())

  grad = jax.grad(loss)(raw)
  assert bool(jnp.all(jnp.isfinite(grad)))
  assert bool(jnp.any(grad != 0.0))


def test_relu_key_and_add_zero_the_negative_raw_values():
  # NTM-Lasagne's copy model: keys and add vectors through a ReLU.
  c = _config(memory_width=2, key_activation="relu", add_activation="relu")
  raw = jnp.zeros(heads.head_output_size(c))
  read, write, vectors = heads.split_head_outputs(raw.at[0].set(-3.0).at[1].set(2.5), c)
  np.testing.assert_allclose(read.key, [[0.0, 2.5]])
  tanh_c = _config(memory_width=2)
  read_t, _, _ = heads.split_head_outputs(raw.at[0].set(-3.0).at[1].set(2.5), tanh_c)
  np.testing.assert_allclose(read_t.key, [[np.tanh(-3.0), np.tanh(2.5)]], rtol=1e-6)
  assert float(jnp.min(vectors.add)) >= 0.0 and float(jnp.min(write.key)) >= 0.0


@pytest.mark.parametrize("kind", ["tanh", "relu", "linear"])
def test_activation_grad_from_the_output_equals_autodiff(kind):
  x = jnp.array([-2.0, -0.5, 0.3, 1.7])
  expected = jax.vmap(jax.grad(lambda v: heads._activate(v, kind)))(x)
  np.testing.assert_allclose(heads.activation_grad(heads._activate(x, kind), kind), expected,
                             rtol=1e-6)


def test_activation_grad_of_an_unknown_activation_is_an_error():
  with pytest.raises(ValueError, match="no derivative for activation 'gelu'"):
    heads.activation_grad(jnp.ones(3), "gelu")
