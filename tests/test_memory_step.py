"""The memory part of an NTM step (ntm_jax/models/memory_step.py): its forward
against the addressing, write and read functions composed by hand, and its
hand-written backward against autodiff and finite differences."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntm_jax
import ntm_jax.models.addressing as addressing
import ntm_jax.models.heads as heads
import ntm_jax.models.memory as memory_ops
from ntm_jax.models import memory_step

CASES = {
    "defaults": dict(),
    "relu keys, linear adds, 2 read and 2 write heads": dict(
        key_activation="relu", add_activation="linear", read_heads=2, write_heads=2),
    "shifts 0..+2 only": dict(shift_range=5, forward_only_shift=True),
}


def _setup(kw, seed=0, raw_scale=3.0, rows=10, width=6):
  config = ntm_jax.NTMConfig(input_size=3, output_size=3, memory_rows=rows,
                             memory_width=width, **kw)
  keys = jax.random.split(jax.random.PRNGKey(seed), 5)
  r, w = config.read_heads, config.write_heads
  carry = (0.5 * jax.random.normal(keys[0], (width, rows)),
           jax.nn.softmax(jax.random.normal(keys[1], (r, rows))),
           jax.nn.softmax(jax.random.normal(keys[2], (w, rows))),
           jax.random.normal(keys[3], (r, width)))
  raw = raw_scale * jax.random.normal(keys[4], (heads.head_output_size(config),))
  return config, carry, raw


def _cotangents(carry, seed=9):
  keys = jax.random.split(jax.random.PRNGKey(seed), len(carry))
  return tuple(jax.random.normal(k, a.shape) for k, a in zip(keys, carry))


@pytest.mark.parametrize("case", list(CASES))
def test_step_equals_the_papers_operations_composed(case):
  config, carry, raw = _setup(CASES[case])
  columns, read_prev, write_prev, _ = carry
  read, write, vectors = heads.split_head_outputs(raw, config)
  address = jax.vmap(addressing.address_columns, (None, 0, 0, 0, 0, 0, 0))
  write_w = address(columns, write_prev, *write)
  new_columns = memory_ops.write_heads_columns(columns, write_w, vectors.erase, vectors.add)
  read_w = address(new_columns, read_prev, *read)
  expected = (new_columns, read_w, write_w, memory_ops.read_heads_columns(new_columns, read_w))
  got, _ = memory_step.step(config, carry, raw)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stored", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["stored stages", "recomputed"])
def test_vjp_equals_autodiff(case, stored):
  config, carry, raw = _setup(CASES[case])
  ct = _cotangents(carry)

  @jax.jit
  def both(carry, raw, ct):
    _, autodiff = jax.vjp(lambda c, r: memory_step.step(config, c, r)[0], carry, raw)
    stages = memory_step.step(config, carry, raw)[1] if stored else None
    return autodiff(ct), memory_step.step_vjp(config, carry, raw, ct, stages)
  expected, got = both(carry, raw, ct)
  for g, e in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_batched_vjp_equals_the_vjp_of_each_sequence():
  config, carry, raw = _setup(CASES["defaults"])
  batch = lambda a: jnp.stack([a, 2.0 * a, -a])
  carries = jax.tree_util.tree_map(batch, carry)
  carries = carries[:1] + tuple(jax.nn.softmax(w, -1) for w in carries[1:3]) + carries[3:]
  raws, cts = batch(raw), jax.tree_util.tree_map(batch, _cotangents(carry))
  stages = jax.vmap(functools.partial(memory_step.step, config))(carries, raws)[1]
  got = memory_step.step_vjp_batch(config, carries, raws, cts, stages)
  for b in range(3):
    one = lambda tree: jax.tree_util.tree_map(lambda a: a[b], tree)
    expected = memory_step.step_vjp(config, one(carries), raws[b], one(cts))
    for g, e in zip(jax.tree_util.tree_leaves(one(got)), jax.tree_util.tree_leaves(expected)):
      np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", [
    "defaults", *(pytest.param(case, marks=pytest.mark.slow) for case in list(CASES)[1:])])
def test_vjp_matches_finite_differences(case):
  """<ct, d step> along a random direction of (carry, raw), central differences."""
  config, carry, raw = _setup(CASES[case], seed=4, raw_scale=1.0)
  ct = _cotangents(carry, seed=5)
  keys = jax.random.split(jax.random.PRNGKey(6), 5)
  d_carry = tuple(jax.random.normal(k, a.shape) for k, a in zip(keys, carry))
  d_raw = jax.random.normal(keys[4], raw.shape)
  # Weightings move along directions that keep their sum: a valid weighting
  # stays one for small steps.
  d_carry = (d_carry[0],) + tuple(d - d.mean(-1, keepdims=True) for d in d_carry[1:3]) + (
      d_carry[3],)

  def objective(s):
    moved = tuple(a + s * d for a, d in zip(carry, d_carry))
    new, _ = memory_step.step(config, moved, raw + s * d_raw)
    return sum(float(jnp.vdot(n, c)) for n, c in zip(new, ct))

  ct_carry, ct_raw = memory_step.step_vjp(config, carry, raw, ct)
  analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(ct_carry, d_carry))
  analytic += float(jnp.vdot(ct_raw, d_raw))
  eps = 1e-3
  numeric = (objective(eps) - objective(-eps)) / (2 * eps)
  assert abs(analytic - numeric) <= 2e-2 * max(1.0, abs(numeric)), (analytic, numeric)


def test_vjp_is_finite_where_the_step_is_singular():
  """Zero memory, a zero key, one-hot previous weightings (exact zeros) and head
  outputs far past the clip (saturated gates, sharpening at its largest)."""
  config, carry, raw = _setup(CASES["relu keys, linear adds, 2 read and 2 write heads"])
  columns, read_prev, write_prev, vectors = carry
  rows = columns.shape[1]
  carry = (jnp.zeros_like(columns), jnp.tile(jax.nn.one_hot(0, rows), (2, 1)),
           jnp.tile(jax.nn.one_hot(3, rows), (2, 1)), vectors)
  @jax.jit
  def both(carry, raw, ct):
    _, autodiff = jax.vjp(lambda c, r: memory_step.step(config, c, r)[0], carry, raw)
    return memory_step.step_vjp(config, carry, raw, ct), autodiff(ct)

  for scaled in (200.0 * raw, jnp.zeros_like(raw), -200.0 * jnp.abs(raw)):
    (ct_carry, ct_raw), expected = both(carry, scaled, _cotangents(carry))
    for leaf in jax.tree_util.tree_leaves((ct_carry, ct_raw)):
      assert np.all(np.isfinite(np.asarray(leaf)))
    for g, e in zip(jax.tree_util.tree_leaves((ct_carry, ct_raw)),
                    jax.tree_util.tree_leaves(expected)):
      np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_clipped_head_outputs_get_no_gradient():
  config, carry, raw = _setup(CASES["defaults"])
  raw = raw.at[0].set(config.head_clip + 5.0).at[1].set(-config.head_clip - 5.0)
  _, ct_raw = memory_step.step_vjp(config, carry, raw, _cotangents(carry))
  assert ct_raw[0] == 0.0 and ct_raw[1] == 0.0
  assert np.count_nonzero(np.asarray(ct_raw[2:])) > 0
