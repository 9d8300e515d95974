"""The optimizer wrapper that skips a converged seed's gradient spikes."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntm_jax.config import TrainConfig
from ntm_jax.training import optimizer as optimizer_lib

DECAY = 0.99


def _gradient(norm):
  """A two-leaf gradient of global norm `norm` (3-4-5 triangle)."""
  return {"a": jnp.asarray([0.6 * norm], jnp.float32), "b": jnp.asarray([[0.8 * norm]], jnp.float32)}


def _run(norms, converged, factor=100.0):
  """Feeds the gradients through skip(sgd) and returns (updates, states)."""
  opt = optimizer_lib.skip_spikes_while_converged(optax.scale_by_adam(), factor, DECAY)
  params = _gradient(0.0)
  state = opt.init(params)
  update = jax.jit(lambda g, s, c: opt.update(g, s, params, converged=c))
  out, states = [], [state]
  for norm, conv in zip(norms, converged):
    u, state = update(_gradient(norm), state, conv)
    out.append(u)
    states.append(state)
  return out, states


def _max_abs(tree):
  return max(float(jnp.max(jnp.abs(x))) for x in jax.tree_util.tree_leaves(tree))


def test_a_spike_while_converged_is_skipped_and_leaves_the_state_alone():
  # Norm 1 three times (geometric mean 1), then 150 > 100 x 1: skipped;
  # then 50 < 100: applied.
  updates, states = _run([1.0, 1.0, 1.0, 150.0, 50.0], [True] * 5)
  assert _max_abs(updates[3]) == 0.0
  before, after = states[3], states[4]
  for old, new in zip(jax.tree_util.tree_leaves(before.inner),
                      jax.tree_util.tree_leaves(after.inner)):
    np.testing.assert_array_equal(old, new)
  assert float(after.log_norm_mean) == float(before.log_norm_mean)
  assert (int(after.applied), int(after.skipped)) == (3, 1)
  assert _max_abs(updates[4]) > 0.0
  assert (int(states[5].applied), int(states[5].skipped)) == (4, 1)


def test_the_same_spike_is_applied_while_not_converged():
  updates, states = _run([1.0, 1.0, 1.0, 150.0], [False] * 4)
  assert _max_abs(updates[3]) > 0.0
  assert (int(states[4].applied), int(states[4].skipped)) == (4, 0)


def test_the_very_first_gradient_is_never_skipped():
  updates, states = _run([1e6], [True])
  assert _max_abs(updates[0]) > 0.0 and int(states[1].skipped) == 0


@pytest.mark.parametrize("norms", [[2.0] * 5, [0.01] * 40])
def test_constant_norms_give_a_bound_of_factor_times_that_norm(norms):
  # Bias correction: a constant norm c is its own running mean from step 1.
  c = norms[0]
  for spike, skipped in ((c * 99.0, 0), (c * 101.0, 1)):  # under / over 100 c
    _, states = _run(norms + [spike], [True] * (len(norms) + 1))
    assert int(states[-1].skipped) == skipped


def test_the_bound_is_the_exponentially_weighted_geometric_mean():
  # Norms 2 then 8: weights 0.99 and 1 (normalised) on their logs, computed
  # here from that definition: a bound of 100 x 2^(0.99/1.99) x 8^(1/1.99).
  geometric = math.exp((DECAY * math.log(2.0) + math.log(8.0)) / (1.0 + DECAY))
  assert 3.9 < geometric < 4.1
  for spike, skipped in ((100 * geometric * 0.999, 0), (100 * geometric * 1.001, 1)):
    _, states = _run([2.0, 8.0, spike], [True] * 3)
    assert int(states[-1].skipped) == skipped


def test_make_optimizer_wraps_only_when_asked():
  off = optimizer_lib.make_optimizer(TrainConfig())
  on = optimizer_lib.make_optimizer(TrainConfig(skip_spikes_while_converged=100))
  params = _gradient(1.0)
  assert not isinstance(off.init(params), optimizer_lib.SpikeSkipState)
  state = on.init(params)
  assert isinstance(state, optimizer_lib.SpikeSkipState)
  # Off, the update equals clip + Adam exactly (the format of older runs).
  reference = optax.chain(optax.clip_by_global_norm(10.0), optax.scale_by_adam())
  got, _ = off.update(_gradient(3.0), off.init(params), params, converged=True)
  want, _ = reference.update(_gradient(3.0), reference.init(params), params)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value", [0.5, -1.0])
def test_a_factor_below_one_is_refused_in_one_line(value):
  with pytest.raises(ValueError, match="skip_spikes_while_converged must be 0 \\(off\\) or >= 1"):
    dataclasses.replace(TrainConfig(), skip_spikes_while_converged=value)


@pytest.mark.slow  # compiles a train step; the wrapper itself is tested above
def test_train_step_skips_a_converged_seeds_spike_and_counts_it(tiny_ntm, tiny_train):
  from ntm_jax.tasks import CopyTask
  from ntm_jax.training import step as step_lib
  config = dataclasses.replace(tiny_train, skip_spikes_while_converged=10.0)
  state = step_lib.init_state(jax.random.PRNGKey(0), tiny_ntm, config)
  # A running mean of log norms of -50 after 100 applied steps: a bound of
  # 10 e^-50, which any real gradient exceeds.
  state = state.replace(opt_state=state.opt_state._replace(
      log_norm_mean=jnp.float32(-50.0), applied=jnp.int32(100)))
  step = jax.jit(lambda s: step_lib.train_step(s, CopyTask(bits=3), tiny_ntm, config)[0])
  skipped = step(state.replace(converged_step=jnp.int32(0)))
  applied = step(state)
  for old, new in zip(jax.tree_util.tree_leaves((state.params, state.opt_state.inner)),
                      jax.tree_util.tree_leaves((skipped.params, skipped.opt_state.inner))):
    np.testing.assert_array_equal(old, new)
  assert int(skipped.opt_state.skipped) == 1 and int(skipped.step) == 1
  assert any(not np.array_equal(old, new) for old, new in zip(
      jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(applied.params)))
  assert int(applied.opt_state.skipped) == 0 and int(applied.opt_state.applied) == 101


@pytest.mark.slow
def test_a_run_with_every_converged_seed_option_resumes_and_reports_skipped_steps(
    tmp_path, tiny_experiment):
  from ntm_jax.runs import engine
  train = dataclasses.replace(tiny_experiment.train, steps=200, restore_best_on_collapse=True,
                              restore_optimizer_state=True, average_while_converged=0.9,
                              skip_spikes_while_converged=2.0, converge_threshold=100.0)
  config = dataclasses.replace(tiny_experiment, train=train, checkpoint_every=100)
  out_dir = str(tmp_path / "run")
  whole = engine.run(config, out_dir, progress=False, log=lambda *_: None)
  seeds = whole["seeds"]
  assert all(isinstance(s["skipped_steps"], int) for s in seeds)
  # Every seed converges at its first two evaluations (threshold 100, step
  # 50), and a bound of twice the running norm skips some of its later steps.
  assert all(s["skipped_steps"] > 0 for s in seeds)
  half = dataclasses.replace(config, train=dataclasses.replace(train, steps=100))
  resumed_dir = str(tmp_path / "resumed")
  engine.run(half, resumed_dir, progress=False, log=lambda *_: None)
  resumed = engine.run(config, resumed_dir, resume=True, resume_steps=200, progress=False,
                       log=lambda *_: None)
  assert resumed["seeds"] == seeds


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_clip_value_clips_each_element_before_the_global_norm(optimizer):
  """With clip_value v the optimizer does to g what clip_value 0 does to
  NumPy's clip(g, -v, v), over three steps (so the optimizer state sees the
  clipped gradients too); a v above every element changes nothing."""
  gradients = [{"a": np.array([30.0, -0.5, 3.0], np.float32),
                "b": np.array([[-12.0, 0.25]], np.float32)},
               {"a": np.array([-4.0, 11.0, 0.1], np.float32),
                "b": np.array([[2.0, -40.0]], np.float32)},
               {"a": np.array([0.3, -0.2, 25.0], np.float32),
                "b": np.array([[1.0, 1.0]], np.float32)}]
  params = jax.tree_util.tree_map(np.zeros_like, gradients[0])

  def updates(config, feed):
    opt = optimizer_lib.make_optimizer(config)
    state, out = opt.init(params), []
    for g in feed:
      u, state = opt.update(g, state, params, converged=False)
      out.append(u)
    return out

  base = TrainConfig(optimizer=optimizer, clip_norm=1e6)
  clipped = updates(dataclasses.replace(base, clip_value=10.0), gradients)
  by_numpy = updates(base, [jax.tree_util.tree_map(lambda x: np.clip(x, -10, 10), g)
                            for g in gradients])
  unclipped = updates(base, gradients)
  loose = updates(dataclasses.replace(base, clip_value=100.0), gradients)
  for got, want, plain, same in zip(clipped, by_numpy, unclipped, loose):
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(same), jax.tree_util.tree_leaves(plain)):
      np.testing.assert_array_equal(a, b)
  # The clip matters here: elements over 10 change the later updates.
  assert any(not np.allclose(a, b, rtol=1e-3)
             for got, plain in zip(clipped, unclipped)
             for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(plain)))


def test_a_negative_clip_value_is_refused_in_one_line():
  with pytest.raises(ValueError, match="clip_value must be >= 0"):
    TrainConfig(clip_value=-1.0)
