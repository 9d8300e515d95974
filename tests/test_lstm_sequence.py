"""ntm_jax.models.lstm_sequence: the layer-at-a-time LSTM baseline and its
hand-written backward pass, against the step-by-step LSTMCell scan and its
autodiff gradients (and, in test_model.py, a NumPy reference)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntm_jax
import ntm_jax.models.lstm_sequence as lstm_sequence
import ntm_jax.models as model_lib

CONFIG = ntm_jax.LSTMConfig(input_size=3, output_size=2, size=8, layers=2)


def _step_by_step_logits(params, inputs, config):
  """The LSTMCell applied at every step with lax.scan, vmapped over the batch."""
  return model_lib.apply_step_by_step(params, inputs, config)


def _loss(logits_fn):
  # A loss that weighs every output and time step differently, so each
  # one's gradient path is exercised.
  def loss(params, inputs):
    logits = logits_fn(params, inputs)
    weights = jnp.sin(jnp.arange(logits.size, dtype=jnp.float32)).reshape(logits.shape)
    return jnp.sum(weights * jnp.tanh(logits))
  return loss


@pytest.fixture(scope="module")
def case():
  params = ntm_jax.init(jax.random.PRNGKey(0), CONFIG)
  # Scale the weights up so the gates saturate in places, not only near 0.5.
  params = jax.tree_util.tree_map(lambda w: 3.0 * w, params)
  inputs = jax.random.normal(jax.random.PRNGKey(1), (3, 7, CONFIG.input_size))
  return params, inputs


def test_logits_equal_the_step_by_step_cell(case):
  params, inputs = case
  expected = _step_by_step_logits(params, inputs, CONFIG)
  got, trace = ntm_jax.apply(params, inputs, CONFIG)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert trace is None


@pytest.mark.slow
@pytest.mark.parametrize("remat", [False, True], ids=["stored", "remat"])
def test_gradients_equal_autodiff_of_the_step_by_step_cell(case, remat):
  params, inputs = case
  expected = jax.grad(_loss(lambda p, x: _step_by_step_logits(p, x, CONFIG)))(params, inputs)
  got = jax.grad(_loss(lambda p, x: lstm_sequence.apply_lstm(p, x, CONFIG.layers, remat)))(
      params, inputs)
  jax.tree_util.tree_map(
      lambda g, e: np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5), got, expected)


def test_input_gradients_equal_autodiff(case):
  params, inputs = case
  loss_fn = _loss(lambda p, x: _step_by_step_logits(p, x, CONFIG))
  expected = jax.grad(loss_fn, argnums=1)(params, inputs)
  got = jax.grad(_loss(lambda p, x: lstm_sequence.apply_lstm(p, x, CONFIG.layers)),
                 argnums=1)(params, inputs)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_seed_vmapped_gradients_equal_each_seed_alone(case):
  params, inputs = case
  seeds = jax.vmap(lambda k: ntm_jax.init(k, CONFIG))(jax.random.split(jax.random.PRNGKey(2), 3))
  loss_fn = _loss(lambda p, x: lstm_sequence.apply_lstm(p, x, CONFIG.layers))
  together = jax.vmap(jax.grad(loss_fn), in_axes=(0, None))(seeds, inputs)
  for k in range(3):
    alone = jax.grad(loss_fn)(jax.tree_util.tree_map(lambda a: a[k], seeds), inputs)
    jax.tree_util.tree_map(
        lambda t, a: np.testing.assert_allclose(t[k], a, rtol=1e-5, atol=1e-6), together, alone)


def test_recurrent_gradient_by_hand_for_one_unit_over_two_steps():
  # H = 1, input projection given directly: pre_t = [i, f, g, o] pre-activations.
  kernel = jnp.array([[0.5, -0.3, 0.8, 0.2]])   # [H=1, 4H]
  pre = jnp.array([[[0.1, 0.4, -0.2, 0.3]], [[-0.5, 0.2, 0.6, -0.1]]])  # [T=2, B=1, 4]
  sig = lambda v: 1.0 / (1.0 + np.exp(-v))

  def reference(k):
    c = h = 0.0
    hs = []
    for t in range(2):
      z = np.asarray(pre[t, 0], np.float64) + h * np.asarray(k, np.float64)
      c = sig(z[1]) * c + sig(z[0]) * np.tanh(z[2])
      h = sig(z[3]) * np.tanh(c)
      hs.append(h)
    return hs[0] + 2.0 * hs[1]

  k0 = np.asarray(kernel[0], np.float64)
  numeric = np.array([(reference(k0 + e) - reference(k0 - e)) / 2e-6
                      for e in 1e-6 * np.eye(4)])
  got = jax.grad(lambda k: jnp.sum(
      lstm_sequence._recurrence(k, pre)[:, 0, 0] * jnp.array([1.0, 2.0])))(kernel)
  np.testing.assert_allclose(got[0], numeric, rtol=1e-4, atol=1e-6)
