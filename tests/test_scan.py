"""dynamic_scan against jax.lax.scan over the truncated sequence."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax.models.scan import dynamic_scan

T_MAX = 6
HIDDEN, INPUT = 3, 2


def rnn_step(params, carry, x):
  """A tiny Elman RNN; the carry and ys are pytrees to exercise the plumbing."""
  h, total = carry["h"], carry["total"]
  h = jnp.tanh(params["w"] @ h + params["u"] @ x + params["b"])
  return {"h": h, "total": total + jnp.sum(h)}, (2.0 * h, {"norm": jnp.sum(h * h)})


def make_problem(seed=0, batch=None):
  k = jax.random.split(jax.random.PRNGKey(seed), 6)
  params = {"w": jax.random.normal(k[0], (HIDDEN, HIDDEN)),
            "u": jax.random.normal(k[1], (HIDDEN, INPUT)),
            "b": 0.1 * jax.random.normal(k[2], (HIDDEN,))}
  lead = () if batch is None else (batch,)
  carry = {"h": jax.random.normal(k[3], lead + (HIDDEN,)),
           "total": jax.random.normal(k[4], lead)}
  xs = jax.random.normal(k[5], lead + (T_MAX, INPUT))
  return params, carry, xs


def loss_of(carry, ys):
  """A scalar touching the final carry and every y (weights per step so that
  each step's cotangent differs)."""
  y, extra = ys
  weights = jnp.arange(1, y.shape[0] + 1, dtype=jnp.float32)
  return (jnp.sum(carry["h"] ** 2) + carry["total"]
          + jnp.sum(weights[:, None] * jnp.sin(y)) + jnp.sum(extra["norm"] ** 2))


def dynamic_loss(params, carry, xs, length):
  return loss_of(*dynamic_scan(rnn_step, params, carry, xs, length))


def reference_run(params, carry, xs, length):
  """lax.scan over xs[:length] (static length), ys zero-padded to T_MAX."""
  carry, ys = jax.lax.scan(lambda c, x: rnn_step(params, c, x), carry, xs[:length])
  pad = lambda y: jnp.pad(y, [(0, T_MAX - length)] + [(0, 0)] * (y.ndim - 1))
  return carry, jax.tree_util.tree_map(pad, ys)


def reference_loss(params, carry, xs, length):
  carry, ys = jax.lax.scan(lambda c, x: rnn_step(params, c, x), carry, xs[:length])
  return loss_of(carry, ys)


def assert_trees_close(actual, expected, **tol):
  assert jax.tree_util.tree_structure(actual) == jax.tree_util.tree_structure(expected)
  for a, e in zip(jax.tree_util.tree_leaves(actual), jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), **tol)


LENGTHS = [0, 1, 3, T_MAX]


@pytest.mark.parametrize("length", LENGTHS)
def test_outputs_and_final_carry_match_truncated_scan(length):
  params, carry, xs = make_problem()
  actual = jax.jit(dynamic_scan, static_argnums=0)(rnn_step, params, carry, xs, length)
  assert_trees_close(actual, reference_run(params, carry, xs, length), rtol=1e-6, atol=1e-6)
  y, extra = actual[1]
  assert np.all(np.asarray(y[length:]) == 0) and np.all(np.asarray(extra["norm"][length:]) == 0)


@pytest.mark.parametrize("length", LENGTHS)
def test_gradients_match_truncated_scan(length):
  params, carry, xs = make_problem(1)
  grads = jax.jit(jax.grad(dynamic_loss, (0, 1, 2)))(params, carry, xs, length)
  # reference_loss slices xs[:length], so its xs gradient is zero past length.
  expected = jax.grad(reference_loss, (0, 1, 2))(params, carry, xs, length)
  assert_trees_close(grads, expected, rtol=1e-5, atol=1e-5)
  assert np.all(np.asarray(grads[2][length:]) == 0)


def test_gradient_matches_finite_differences():
  params, carry, xs = make_problem(2)
  length, eps = 4, 1e-2
  grad = jax.grad(dynamic_loss)(params, carry, xs, length)["w"][1, 2]

  def loss_at(delta):
    shifted = dict(params, w=params["w"].at[1, 2].add(delta))
    return float(dynamic_loss(shifted, carry, xs, length))

  numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
  np.testing.assert_allclose(float(grad), numeric, rtol=2e-2, atol=2e-3)


def test_one_program_serves_every_length():
  params, carry, xs = make_problem(3)
  run = jax.jit(jax.value_and_grad(dynamic_loss))
  for length in LENGTHS:
    value, _ = run(params, carry, xs, jnp.int32(length))
    np.testing.assert_allclose(float(value),
                               float(reference_loss(params, carry, xs, length)), rtol=1e-5)
  assert run._cache_size() == 1


def _per_example_reference(params, carry, xs, lengths):
  values, grads = [], []
  for i, length in enumerate(lengths):
    c_i = jax.tree_util.tree_map(lambda a: a[i], carry)
    value, g = jax.value_and_grad(reference_loss, (0, 1, 2))(params, c_i, xs[i], length)
    values.append(value)
    grads.append(g)
  stack = lambda *a: jnp.stack(a)
  return jnp.stack(values), jax.tree_util.tree_map(stack, *grads)


def test_vmap_with_unbatched_length():
  params, carry, xs = make_problem(4, batch=5)
  length = 3
  per_example = jax.vmap(jax.value_and_grad(dynamic_loss, (0, 1, 2)),
                         in_axes=(None, 0, 0, None))
  actual = jax.jit(per_example)(params, carry, xs, length)
  assert_trees_close(actual, _per_example_reference(params, carry, xs, [length] * 5),
                     rtol=1e-4, atol=1e-4)


def test_vmap_with_batched_lengths():
  params, carry, xs = make_problem(5, batch=5)
  lengths = [0, 1, 3, 5, T_MAX]
  per_example = jax.vmap(jax.value_and_grad(dynamic_loss, (0, 1, 2)), in_axes=(None, 0, 0, 0))
  actual = jax.jit(per_example)(params, carry, xs, jnp.array(lengths))
  assert_trees_close(actual, _per_example_reference(params, carry, xs, lengths),
                     rtol=1e-4, atol=1e-4)


def test_unbatched_length_runs_only_length_steps_under_vmap():
  calls = []

  def counted_step(params, carry, x):
    jax.debug.callback(lambda: calls.append(1))
    return rnn_step(params, carry, x)

  params, carry, xs = make_problem(6, batch=4)
  loss = lambda p, c, x, n: loss_of(*dynamic_scan(counted_step, p, c, x, n))
  grad = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0, None)))
  jax.block_until_ready(grad(params, carry, xs, 2))
  jax.effects_barrier()
  assert len(calls) == 2 * 2  # forward and recomputing backward, 2 steps each


def nan_past(params, carry, x):
  """Finite on ordinary inputs (|x| < 1e3); NaN when x holds the padding
  marker 1e4, in the values and in every gradient that flows through h."""
  x = x.at[0].add(jnp.log(1e3 - x[0]) - jnp.log(1e3))
  return rnn_step(params, carry, x)


@pytest.mark.parametrize("batched", [False, True])
def test_padding_that_would_be_nan_never_reaches_gradients(batched):
  params, carry, xs = make_problem(7, batch=3)
  lengths = jnp.array([2, 4, 1]) if batched else jnp.int32(3)
  padding = jnp.arange(T_MAX)[None, :, None] >= (lengths[:, None, None] if batched else lengths)
  xs = jnp.where(padding, 1e4, xs)
  loss = lambda p, c, x, n: loss_of(*dynamic_scan(nan_past, p, c, x, n))
  values, grads = jax.jit(jax.vmap(jax.value_and_grad(loss, (0, 1, 2)),
                                   in_axes=(None, 0, 0, 0 if batched else None)))(
                                       params, carry, xs, lengths)
  for leaf in jax.tree_util.tree_leaves((values, grads)):
    assert np.all(np.isfinite(np.asarray(leaf)))
  # The poisoned step itself is not NaN-free: running it would leak.
  full = jax.grad(loss)(params, jax.tree_util.tree_map(lambda a: a[0], carry), xs[0], T_MAX)
  assert not np.all(np.isfinite(np.asarray(full["w"])))
