"""The seed-parallel training engine: metrics, curriculum, convergence, health."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax import LSTMConfig, NTMConfig, train
from ntm_jax.tasks import CopyTask

TASK = CopyTask(bits=3)
MODEL = NTMConfig(input_size=4, output_size=3, controller_size=16, memory_rows=8,
                  memory_width=4)
CONFIG = train.TrainConfig(seeds=3, steps=40, batch_size=2, max_length=3, eval_every=20,
                           test_lengths=(2, 4), test_memory_size=8)


def _chunk(model=MODEL, config=CONFIG):
  return train.make_seed_parallel(functools.partial(
      train.train_chunk, task=TASK, model_config=model, config=config))


@pytest.fixture(scope="module")
def chunk():
  return _chunk()


def test_sequence_metrics_count_bits_and_errors_only_under_the_mask():
  p = jnp.array([0.9, 0.2, 0.6])
  logits = jnp.log(p / (1 - p)).reshape(1, 3, 1)        # [B=1, T=3, O=1]
  targets = jnp.array([1.0, 1.0, 0.0]).reshape(1, 3, 1)
  mask = jnp.array([[1.0, 1.0, 0.0]])                     # last step not counted
  bits, errors = train.sequence_metrics(logits, targets, mask)
  np.testing.assert_allclose(bits, [-math.log2(0.9) - math.log2(0.2)], rtol=1e-5)
  np.testing.assert_array_equal(errors, [1.0])             # 0.2 < 0.5 on a 1


def test_curriculum_grows_linearly_from_start_to_max_length():
  off = train.TrainConfig(max_length=20)
  assert int(train.curriculum_length(5000, off)) == 20
  on = train.TrainConfig(max_length=20, curriculum_steps=1000, curriculum_start=4)
  got = [int(train.curriculum_length(s, on)) for s in (0, 250, 500, 1000, 5000)]
  assert got == [4, 8, 12, 20, 20]


def test_cosine_schedule_goes_from_full_to_final_fraction():
  config = train.TrainConfig(steps=1000, eval_every=100, lr_schedule="cosine",
                             lr_final_fraction=0.1)
  got = [float(train.learning_rate_scale(s, config)) for s in (0, 500, 1000)]
  np.testing.assert_allclose(got, [1.0, 0.55, 0.1], rtol=1e-6)


def test_convergence_needs_patience_and_a_collapse_resets_it():
  config = train.TrainConfig(converge_threshold=0.1, converge_patience=2)
  state = train.init_state(jax.random.PRNGKey(0), MODEL, CONFIG)
  errors = [0.5, 0.05, 0.05, 0.05, 0.5, 0.5, 0.05, 0.05]
  expected_converged = [-1, -1, 200, 200, 200, -1, -1, 700]
  expected_collapses = [0, 0, 0, 0, 0, 1, 1, 1]
  for i, error in enumerate(errors):
    state = state.replace(step=jnp.int32(100 * (i + 1)))
    state = train._update_convergence(state, jnp.float32(error), config)
    assert int(state.converged_step) == expected_converged[i], i
    assert int(state.collapses) == expected_collapses[i], i
  assert float(state.best_eval) == pytest.approx(0.05)


@pytest.mark.parametrize("kwargs,word", [
    ({"seeds": 0}, "seeds"), ({"steps": 30, "eval_every": 20}, "multiple"),
    ({"min_length": 5, "max_length": 3}, "min_length"), ({"optimizer": "sgd"}, "optimizer"),
    ({"lr_schedule": "step"}, "lr_schedule")])
def test_bad_train_config_is_a_one_line_value_error(kwargs, word):
  with pytest.raises(ValueError, match=word) as error:
    train.TrainConfig(**kwargs)
  assert "\n" not in str(error.value)


def test_a_diverging_seed_is_frozen_and_never_touches_the_others(chunk):
  states = train.init_states(MODEL, CONFIG, 3)
  poisoned = states.replace(learning_rate=states.learning_rate.at[1].set(jnp.inf))
  clean, _, _ = chunk(states)
  bad, metrics, _ = chunk(poisoned)
  assert bad.diverged.tolist() == [False, True, False]
  assert int(bad.diverged_step[1]) == 0 and int(bad.diverged_step[0]) == -1
  leaves = [jax.tree_util.tree_leaves(jax.device_get(s.params)) for s in (bad, clean, states)]
  for leaf_bad, leaf_clean, leaf_init in zip(*leaves):
    assert np.isfinite(leaf_bad).all()
    np.testing.assert_array_equal(leaf_bad[[0, 2]], leaf_clean[[0, 2]])
    np.testing.assert_array_equal(leaf_bad[1], leaf_init[1])  # the bad update was skipped
  assert np.isfinite(np.asarray(metrics["loss"])[[0, 2]]).all()


def test_training_lowers_the_loss(chunk):
  states = train.init_states(MODEL, CONFIG, 3)
  # The learning rate lives in the state: a faster one needs no recompile.
  states = states.replace(learning_rate=jnp.full((3,), 1e-2))
  losses = []
  for _ in range(15):
    states, metrics, _ = chunk(states)
    losses.append(np.asarray(metrics["loss"]).mean())
  assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_both_optimizers_and_the_lstm_baseline_train_finitely(optimizer):
  config = train.TrainConfig(seeds=2, steps=10, batch_size=2, max_length=3, eval_every=10,
                             optimizer=optimizer, learning_rate=1e-3,
                             test_lengths=(2,), test_memory_size=8)
  model = LSTMConfig(input_size=4, output_size=3, size=8, layers=1) if optimizer == "rmsprop" else MODEL
  states = train.init_states(model, config, 2)
  states, metrics, evals = _chunk(model, config)(states)
  assert np.isfinite(metrics["loss"]).all() and np.isfinite(evals["eval_loss"]).all()
  assert not states.diverged.any()
  assert (states.step == 10).all()
