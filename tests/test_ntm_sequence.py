"""The NTM's hand-written backward pass (ntm_jax/models/ntm_sequence.py), with a
feed-forward or an LSTM controller, against autodiff of the cell scanned step by
step, and against finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntm_jax
from ntm_jax.models import ntm_sequence

CASES = {
    "relu, one layer, 2 read heads": dict(controller_activation="relu", read_heads=2),
    "tanh, two layers, 2 write heads": dict(controller_activation="tanh", controller_layers=2,
                                            write_heads=2),
    "LSTM, one layer": dict(controller="lstm"),
    "tanh, relu strengths": dict(controller_activation="tanh", strength_activation="relu"),
    "LSTM, two layers, 2 read heads": dict(controller="lstm", controller_layers=2, read_heads=2),
}


def _setup(kw, seed=0):
  config = ntm_jax.NTMConfig(input_size=5, output_size=4, memory_rows=12, memory_width=6,
                             controller_size=10, **kw)
  params = ntm_jax.init(jax.random.PRNGKey(seed), config)
  x = jax.random.bernoulli(jax.random.PRNGKey(seed + 1), 0.5, (3, 9, 5)).astype(jnp.float32)
  return config, params, x


def _losses(config, x, length):
  weights = jax.random.normal(jax.random.PRNGKey(7), x.shape[:2] + (config.output_size,))

  def hand_written(params):
    logits, _ = ntm_jax.apply(params, x, config, length=length)
    return jnp.sum(jnp.tanh(logits) * weights)

  def step_by_step(params):
    logits = ntm_jax.models.apply_step_by_step(params, x[:, :length], config)
    return jnp.sum(jnp.tanh(logits) * weights[:, :length])
  return hand_written, step_by_step


# The fast tier checks the LSTM controller against autodiff here and the
# feed-forward one against finite differences below; the slow tier all.
FAST = ("LSTM, one layer",)


@pytest.mark.parametrize("case", [
    case if case in FAST else pytest.param(case, marks=pytest.mark.slow) for case in CASES])
@pytest.mark.parametrize("length", [pytest.param(1, marks=pytest.mark.slow), 9])
def test_values_and_gradients_equal_autodiff_of_the_scanned_cell(case, length):
  config, params, x = _setup(CASES[case])
  assert ntm_sequence.applies(config)
  hand_written, step_by_step = _losses(config, x, length)
  value, grads = jax.value_and_grad(hand_written)(params)
  ref_value, ref_grads = jax.value_and_grad(step_by_step)(params)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5, atol=1e-5)
  for (path, g), r in zip(jax.tree_util.tree_leaves_with_path(grads),
                          jax.tree_util.tree_leaves(ref_grads)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))


def test_steps_past_length_are_zero_and_get_no_gradient():
  config, params, x = _setup(CASES["relu, one layer, 2 read heads"])
  logits, _ = ntm_jax.apply(params, x, config, length=4)
  assert np.all(np.asarray(logits[:, 4:]) == 0.0)
  # Changing the inputs past the length changes nothing, gradients included.
  changed = x.at[:, 4:].set(1.0 - x[:, 4:])
  loss = lambda p, inputs: jnp.sum(ntm_jax.apply(p, inputs, config, length=4)[0] ** 2)
  for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss)(params, x)),
                  jax.tree_util.tree_leaves(jax.grad(loss)(params, changed))):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", [
    "relu, one layer, 2 read heads",
    *(pytest.param(case, marks=pytest.mark.slow) for case in list(CASES)[1:])])
def test_directional_derivative_matches_finite_differences(case):
  config, params, x = _setup(CASES[case], seed=3)
  hand_written, _ = _losses(config, x, 8)
  leaves, treedef = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(11), len(leaves))
  direction = jax.tree_util.tree_unflatten(
      treedef, [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves)])
  grads = jax.grad(hand_written)(params)
  analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree_util.tree_leaves(grads),
                                                        jax.tree_util.tree_leaves(direction)))
  eps = 1e-3
  shifted = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * eps * d, params, direction)
  numeric = (float(hand_written(shifted(1.0))) - float(hand_written(shifted(-1.0)))) / (2 * eps)
  assert numeric == pytest.approx(analytic, rel=2e-2, abs=1e-3)


def test_gradients_stay_finite_with_saturated_head_outputs():
  # Raw head outputs far beyond head_clip: clipped keys, beta, gamma at
  # their limits; sharpening of near-one-hot weightings.
  config, params, x = _setup(CASES["relu, one layer, 2 read heads"])
  params = jax.tree_util.tree_map(lambda p: p * 200.0, params)
  hand_written, _ = _losses(config, x, 9)
  grads = jax.grad(hand_written)(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


def test_the_lstm_baseline_takes_the_generic_path():
  assert not ntm_sequence.applies(ntm_jax.LSTMConfig(input_size=5, output_size=4))
