"""The seed-parallel training engine (ntm_jax.training) on tiny configurations."""
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax import LSTMConfig, NTMConfig
import ntm_jax.training as train
import ntm_jax.training.draws
import ntm_jax.training.step
import ntm_jax.tasks as tasks_lib
from ntm_jax.tasks import CopyTask

TASK = CopyTask(bits=3)
MODEL = NTMConfig(input_size=4, output_size=3, controller_size=16, memory_rows=8,
                  memory_width=4)
CONFIG = train.TrainConfig(seeds=3, steps=10, batch_size=2, max_length=3, eval_every=5,
                           eval_batch=6, test_lengths=(2, 4), test_memory_size=8)


def _make_chunk(model=MODEL, config=CONFIG):
  return train.make_seed_parallel(functools.partial(
      train.train_chunk, task=TASK, model_config=model, config=config))


def _leaves(tree):
  return jax.tree_util.tree_leaves(jax.device_get(tree))


@pytest.fixture(scope="module")
def chunk():
  """The compiled 5-step chunk for MODEL / CONFIG, shared by the module."""
  return _make_chunk()


@pytest.fixture(scope="module")
def initial_states():
  return train.init_states(MODEL, CONFIG, 3)


@pytest.fixture(scope="module")
def one_state(initial_states):
  """Seed 0's unstacked TrainState (an eager init_state would cost seconds)."""
  return jax.tree_util.tree_map(lambda x: x[0], initial_states)


# sequence_metrics ------------------------------------------------------------


def test_sequence_metrics_by_hand():
  ln3 = math.log(3.0)
  # B=2, T=3, O=2. sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4, sigmoid(0) = 1/2.
  logits = jnp.array([
      [[ln3, -ln3], [0.0, ln3], [5.0, -5.0]],
      [[-ln3, -ln3], [ln3, 0.0], [ln3, ln3]],
  ])
  targets = jnp.array([
      [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
      [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]],
  ])
  mask = jnp.array([[1.0, 1.0, 0.0],    # sequence 0: its last step is not scored
                    [0.0, 1.0, 1.0]])   # sequence 1: its first step is not scored
  bits, errors = tasks_lib.sigmoid_sequence_metrics(logits, targets, mask).values()
  log2_4, log2_43 = 2.0, math.log2(4 / 3)
  # Sequence 0: p(1)=3/4 on 1, p(1)=1/4 on 0 -> -log2(3/4) each;
  # p=1/2 on 1 -> 1 bit; p=3/4 on 0 -> -log2(1/4) = 2 bits.
  expected_bits_0 = log2_43 + log2_43 + 1.0 + log2_4
  # Sequence 1: p=3/4 on 0 -> 2 bits, p=1/2 on 0 -> 1 bit, p=3/4 on 1 twice.
  expected_bits_1 = log2_4 + 1.0 + log2_43 + log2_43
  np.testing.assert_allclose(bits, [expected_bits_0, expected_bits_1], rtol=1e-5)
  # Errors: logit > 0 means "1". Seq 0: (0 on 1) at t=1 and (1 on 0) at t=1 -> 2;
  # the t=2 outputs are both wrong but masked. Seq 1: (1 on 0) at t=1 -> 1;
  # the masked t=0 output (0 on 1, twice) is not counted.
  np.testing.assert_array_equal(errors, [2.0, 1.0])


def test_sequence_metrics_with_an_empty_mask_is_zero():
  logits = jnp.full((1, 4, 3), 2.0)
  bits, errors = tasks_lib.sigmoid_sequence_metrics(logits, jnp.zeros((1, 4, 3)), jnp.zeros((1, 4))).values()
  np.testing.assert_array_equal(bits, [0.0])
  np.testing.assert_array_equal(errors, [0.0])


def _logits_with_large_magnitudes(key, shape):
  logits = 4.0 * jax.random.normal(key, shape)
  extremes = jnp.array([0.0, -0.0, 1e-8, 17.0, -17.0, 88.7, -88.7, 104.0, -104.0, 1e4, -1e4,
                        3e38, -3e38])
  return logits.at[0, :extremes.size].set(extremes)


def test_sigmoid_cross_entropy_has_optax_bits_and_gradients():
  import optax  # the reference only: the task code does without it
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  logits = _logits_with_large_magnitudes(keys[0], (64, 33))
  targets = {"bits": jax.random.bernoulli(keys[1], 0.5, (64, 33)).astype(jnp.float32),
             "probabilities": jax.random.uniform(keys[2], (64, 33))}
  ours, theirs = tasks_lib.base.sigmoid_cross_entropy, optax.sigmoid_binary_cross_entropy
  for t in targets.values():
    for wrap in (lambda f: f, jax.jit):
      np.testing.assert_array_equal(wrap(ours)(logits, t), wrap(theirs)(logits, t))
      grad = lambda f: jax.grad(lambda x: jnp.sum(f(x, t)))
      np.testing.assert_array_equal(wrap(grad(ours))(logits), wrap(grad(theirs))(logits))


def test_sigmoid_cross_entropy_stays_finite_far_from_zero():
  logits = jnp.array([1e4, -1e4, 104.0, -104.0])
  np.testing.assert_array_equal(
      tasks_lib.base.sigmoid_cross_entropy(logits, jnp.array([1.0, 0.0, 0.0, 1.0])),
      [0.0, 0.0, 104.0, 104.0])  # right answers cost nothing, wrong ones |x| nats


# curriculum_length -----------------------------------------------------------


def test_curriculum_off_is_always_max_length():
  config = train.TrainConfig(max_length=12, curriculum_steps=0)
  for step in (0, 1, 500, 10**6):
    assert int(train.curriculum_length(step, config)) == 12


def test_curriculum_grows_linearly_then_holds():
  config = train.TrainConfig(max_length=10, curriculum_steps=100, curriculum_start=2)
  # 2 + floor(min(step / 100, 1) * 8)
  expected = {0: 2, 13: 3, 25: 4, 50: 6, 99: 9, 100: 10, 150: 10, 10**5: 10}
  got = {s: int(train.curriculum_length(s, config)) for s in expected}
  assert got == expected
  # The step may be traced: the same values from a jitted call on int32 steps.
  jitted = jax.jit(lambda s: train.curriculum_length(s, config))
  steps = jnp.array(list(expected), jnp.int32)
  assert jax.vmap(jitted)(steps).tolist() == list(expected.values())


# _update_convergence ---------------------------------------------------------


def _marked_params(params, mark):
  return jax.tree_util.tree_map(lambda x: jnp.full_like(x, mark), params)


# Jitted (config static): one compile instead of many small eager dispatches.
_update_convergence = jax.jit(ntm_jax.training.step._update_convergence, static_argnums=2)


def test_convergence_bookkeeping_step_by_step(one_state):
  config = train.TrainConfig(converge_threshold=0.1, converge_patience=2)
  state = one_state
  template = state.params
  errors = [0.5, 0.05, 0.05, 0.05, 0.5, 0.5, 0.05]
  costs = [9.0, 3.0, 2.0, 2.5, 8.0, 8.0, 1.0]
  # (converged_step, collapses, best_eval, streak_start, below, above, best
  # mark, first_converged_step, best_step). Best: the lowest error, ties to
  # the lower cost, strict improvements only.
  expected = [
      (-1, 0, 0.5, -1, 0, 1, 0, -1, 100),       # 100: above
      (-1, 0, 0.05, 200, 1, 0, 1, -1, 200),     # 200: below, streak starts, patience not met
      (200, 0, 0.05, 200, 2, 0, 2, 200, 300),   # 300: converged at 200; same error, lower cost
      (200, 0, 0.05, 200, 3, 0, 2, 200, 300),   # 400: same error, higher cost: keep 300's
      (200, 0, 0.05, 200, 0, 1, 2, 200, 300),   # 500: one bad eval is tolerated
      (-1, 1, 0.05, 200, 0, 2, 2, 200, 300),    # 600: 2nd bad eval in a row: collapse
      (-1, 1, 0.05, 700, 1, 0, 6, 200, 700),    # 700: new streak; same error, lowest cost
  ]
  for i, (error, cost, want) in enumerate(zip(errors, costs, expected)):
    state = state.replace(step=jnp.int32(100 * (i + 1)),
                          params=_marked_params(template, float(i)))
    state = _update_convergence(state, jnp.float32(error), config, jnp.float32(cost))
    got = (int(state.converged_step), int(state.collapses), float(state.best_eval),
           int(state.streak_start), int(state.below_count), int(state.above_count))
    assert got[:2] == want[:2], (i, got, want)
    assert got[2] == pytest.approx(want[2]), (i, got, want)
    assert got[3:] == want[3:6], (i, got, want)
    assert float(state.last_eval) == pytest.approx(error)
    assert (int(state.first_converged_step), int(state.best_step)) == want[7:], (i, want)
    for leaf in _leaves(state.best_params):
      assert np.all(leaf == want[6]), (i, "best_params mark", leaf.ravel()[:3], want[6])


def test_a_nan_evaluation_counts_as_above_and_never_becomes_best(one_state):
  config = train.TrainConfig(converge_threshold=0.1, converge_patience=1)
  state = one_state
  state = _update_convergence(state.replace(step=jnp.int32(10)), jnp.float32(0.0),
                              config)
  assert int(state.converged_step) == 10
  state = _update_convergence(state.replace(step=jnp.int32(20)),
                              jnp.float32(jnp.nan), config)
  assert int(state.converged_step) == -1 and int(state.collapses) == 1
  assert float(state.best_eval) == 0.0
  assert math.isnan(float(state.last_eval))


def test_an_evaluation_after_divergence_never_becomes_best(one_state):
  """A seed frozen by a non-finite step keeps the best of its evaluations
  before it: a later, lower evaluation of its frozen parameters changes
  neither best_step, best_eval nor best_params."""
  config = train.TrainConfig(converge_threshold=0.1, converge_patience=2)
  template = one_state.params
  state = _update_convergence(
      one_state.replace(step=jnp.int32(100), params=_marked_params(template, 1.0)),
      jnp.float32(3.0), config, jnp.float32(9.0))
  assert int(state.best_step) == 100
  state = state.replace(diverged=jnp.bool_(True), diverged_step=jnp.int32(106),
                        step=jnp.int32(200), params=_marked_params(template, 2.0))
  state = _update_convergence(state, jnp.float32(0.5), config, jnp.float32(1.0))
  assert int(state.best_step) == 100 and float(state.best_eval) == 3.0
  assert float(state.best_cost) == 9.0 and float(state.last_eval) == 0.5
  for leaf in _leaves(state.best_params):
    assert np.all(leaf == 1.0)
  # The same evaluation of a healthy seed does become its best.
  healthy = _update_convergence(state.replace(diverged=jnp.bool_(False)), jnp.float32(0.5),
                                config, jnp.float32(1.0))
  assert int(healthy.best_step) == 200


def test_a_seed_diverged_before_its_first_evaluation_has_no_best_step(chunk, initial_states):
  poisoned = initial_states.replace(
      learning_rate=initial_states.learning_rate.at[1].set(jnp.inf))
  states, _, eval_metrics = chunk(poisoned)
  assert jax.device_get(states.diverged).tolist() == [False, True, False]
  assert int(states.diverged_step[1]) == 0
  # Its evaluation at step 5 was finite, and is still not its best.
  assert np.isfinite(float(eval_metrics["eval_bit_errors"][1]))
  assert jax.device_get(states.best_step).tolist() == [5, -1, 5]
  assert not np.isfinite(float(states.best_eval[1]))
  for best, init in zip(_leaves(states.best_params), _leaves(initial_states.params)):
    np.testing.assert_array_equal(best[1], init[1])


# TrainConfig validation ------------------------------------------------------


@pytest.mark.parametrize("kwargs,word", [
    ({"seeds": 0}, "seeds"),
    ({"eval_every": 0}, "eval_every"),
    ({"min_length": 5, "max_length": 3}, "min_length"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"lr_schedule": "step"}, "lr_schedule"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"test_lengths": ()}, "test_lengths"),
    ({"curriculum_steps": 10, "curriculum_start": 30, "max_length": 20}, "curriculum_start"),
    ({"max_length": 20, "max_length_while_converged": 19}, "max_length_while_converged"),
    ({"train_memory_sizes": (32, 0)}, "train_memory_sizes"),
])
def test_bad_train_config_raises_a_one_line_value_error(kwargs, word):
  with pytest.raises(ValueError, match=word) as error:
    train.TrainConfig(**kwargs)
  assert "\n" not in str(error.value)


def test_train_config_normalises_test_lengths_to_a_tuple_of_ints():
  config = train.TrainConfig(test_lengths=[np.int64(3), 5.0])
  assert config.test_lengths == (3, 5)
  assert all(type(n) is int for n in config.test_lengths)
  hash(config)  # static argument of jit: must stay hashable


# The engine ------------------------------------------------------------------


@pytest.mark.slow
def test_a_diverged_seed_is_frozen_and_isolated(chunk, initial_states):
  poisoned = initial_states.replace(
      learning_rate=initial_states.learning_rate.at[1].set(jnp.inf))
  clean, clean_metrics, _ = chunk(initial_states)
  bad, bad_metrics, bad_eval = chunk(poisoned)

  assert jax.device_get(clean.diverged).tolist() == [False, False, False]
  assert jax.device_get(bad.diverged).tolist() == [False, True, False]
  diverged_step = jax.device_get(bad.diverged_step).tolist()
  assert diverged_step[1] == 0  # the very first update is infinite
  assert diverged_step[0] == diverged_step[2] == -1
  assert jax.device_get(bad.step).tolist() == [5, 5, 5]

  init_leaves = _leaves(initial_states.params)
  for got, ref, init in zip(_leaves(bad.params), _leaves(clean.params), init_leaves):
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[1], init[1])  # every update was skipped
    np.testing.assert_array_equal(got[[0, 2]], ref[[0, 2]])
  for got, ref in zip(_leaves(bad.opt_state), _leaves(clean.opt_state)):
    np.testing.assert_array_equal(got[[0, 2]], ref[[0, 2]])
  # Seeds 0 and 2 saw exactly the clean run's steps and evaluation.
  for name in clean_metrics:
    np.testing.assert_array_equal(np.asarray(bad_metrics[name])[[0, 2]],
                                  np.asarray(clean_metrics[name])[[0, 2]])
  # The frozen seed's evaluation still uses finite params.
  assert np.isfinite(np.asarray(bad_eval["eval_loss"])).all()

  # Once diverged, always diverged: a later chunk keeps it frozen.
  again, _, _ = chunk(bad)
  assert jax.device_get(again.diverged).tolist() == [False, True, False]
  assert int(again.diverged_step[1]) == 0
  for got, init in zip(_leaves(again.params), init_leaves):
    np.testing.assert_array_equal(got[1], init[1])


def test_one_chunk_advances_every_seed_and_reports_per_step_metrics(chunk, initial_states):
  states, step_metrics, eval_metrics = chunk(initial_states)
  assert jax.device_get(states.step).tolist() == [5, 5, 5]
  assert set(step_metrics) == {"loss", "bit_errors", "grad_norm", "train_length"}
  for name, values in step_metrics.items():
    assert values.shape == (3, CONFIG.eval_every), name
  assert np.all(np.asarray(step_metrics["train_length"]) == CONFIG.max_length)
  assert set(eval_metrics) == {"eval_loss", "eval_bit_errors"}
  for values in eval_metrics.values():
    assert values.shape == (3,) and np.isfinite(np.asarray(values)).all()
  # Different seeds are different runs.
  first = _leaves(states.params)[0]
  assert not np.array_equal(first[0], first[1])
  # The evaluation was recorded in the state.
  np.testing.assert_array_equal(states.last_eval, eval_metrics["eval_bit_errors"])


def test_training_lowers_the_loss(chunk, initial_states):
  # The learning rate is per-seed state, so a faster one needs no recompile.
  states = initial_states.replace(learning_rate=jnp.full((3,), 1e-2, jnp.float32))
  losses = []
  for _ in range(40):  # 200 steps
    states, metrics, _ = chunk(states)
    losses.append(np.asarray(metrics["loss"]))  # [seeds, 5]
  losses = np.concatenate(losses, axis=1)       # [seeds, 200]
  assert np.isfinite(losses).all()
  # About 5.9 -> 2.5-2.9 bits per sequence for base seeds 0-3 (ratio <= 0.48).
  start, end = losses[:, :25].mean(), losses[:, -25:].mean()
  assert end < 0.8 * start, (start, end)
  assert not np.asarray(states.diverged).any()


# rmsprop compiles a chunk of its own: slow.
@pytest.mark.parametrize("optimizer", ["adam", pytest.param("rmsprop", marks=pytest.mark.slow)])
def test_both_optimizers_train_finitely(optimizer, chunk, initial_states):
  if optimizer == CONFIG.optimizer:
    config, run = CONFIG, chunk  # reuse the module's compiled chunk
  else:
    config = dataclasses.replace(CONFIG, optimizer=optimizer)
    run = _make_chunk(MODEL, config)
  # The optimizer state's structure depends on the optimizer.
  states = initial_states.replace(opt_state=jax.vmap(
      train.make_optimizer(config).init)(initial_states.params))
  new, metrics, evals = run(states)
  assert np.isfinite(np.asarray(metrics["loss"])).all()
  assert np.isfinite(np.asarray(evals["eval_loss"])).all()
  assert not np.asarray(new.diverged).any()
  assert jax.device_get(new.step).tolist() == [5, 5, 5]
  moved = False
  for got, init in zip(_leaves(new.params), _leaves(states.params)):
    assert np.isfinite(got).all()
    moved |= not np.array_equal(got, init)
  assert moved
  for leaf in _leaves(new.opt_state):
    assert np.isfinite(leaf).all()


@pytest.mark.slow
def test_the_lstm_baseline_trains_through_the_same_chunk():
  model = LSTMConfig(input_size=4, output_size=3, size=8, layers=1)
  config = train.TrainConfig(seeds=2, steps=5, batch_size=2, max_length=3, eval_every=5,
                             eval_batch=3, test_lengths=(2,), test_memory_size=None)
  states = train.init_states(model, config, 2)
  new, metrics, evals = _make_chunk(model, config)(states)
  assert np.isfinite(np.asarray(metrics["loss"])).all()
  assert np.isfinite(np.asarray(evals["eval_bit_errors"])).all()
  assert not np.asarray(new.diverged).any()
  for got, init in zip(_leaves(new.params), _leaves(states.params)):
    assert np.isfinite(got).all()
    assert not np.array_equal(got, init)


def test_cosine_schedule_goes_from_full_to_final_fraction():
  config = train.TrainConfig(steps=1000, eval_every=100, lr_schedule="cosine",
                             lr_final_fraction=0.1)
  got = [float(train.learning_rate_scale(s, config)) for s in (0, 500, 1000)]
  np.testing.assert_allclose(got, [1.0, 0.55, 0.1], rtol=1e-6)


def test_a_converged_seed_steps_with_its_lr_times_lr_after_converged():
  config = dataclasses.replace(CONFIG, lr_after_converged=0.25)
  state = train.init_state(jax.random.PRNGKey(0), MODEL, config)
  step = jax.jit(lambda s: ntm_jax.training.step.train_step(s, TASK, MODEL, config)[0])
  moves = {}
  for converged_step in (-1, 0):  # not converged; converged (since step 0)
    new = step(state.replace(converged_step=jnp.int32(converged_step)))
    moves[converged_step] = [a - b for a, b in zip(_leaves(new.params), _leaves(state.params))]
  # Same data, same gradients, same Adam direction: only the rate differs.
  for full, calm in zip(moves[-1], moves[0]):
    # (p + lr d) - p rounds at the size of p, not of lr d: 1e-7 absolute.
    np.testing.assert_allclose(calm, 0.25 * full, rtol=1e-3, atol=1e-7)
  assert any(np.abs(m).max() > 0 for m in moves[-1])


def test_lr_after_converged_zero_freezes_a_converged_seed_only():
  config = dataclasses.replace(CONFIG, lr_after_converged=0.0)
  state = train.init_state(jax.random.PRNGKey(0), MODEL, config)
  step = jax.jit(lambda s: ntm_jax.training.step.train_step(s, TASK, MODEL, config)[0])
  frozen = step(state.replace(converged_step=jnp.int32(0)))
  for a, b in zip(_leaves(frozen.params), _leaves(state.params)):
    np.testing.assert_array_equal(a, b)
  moving = step(state)
  assert any(not np.array_equal(a, b)
             for a, b in zip(_leaves(moving.params), _leaves(state.params)))
  with pytest.raises(ValueError, match=r"lr_after_converged must be in \[0, 1\], got -0.5"):
    dataclasses.replace(CONFIG, lr_after_converged=-0.5)


def test_paired_lengths_are_uniform_on_both_ranges_and_the_longer_covers_the_shorter():
  config = dataclasses.replace(CONFIG, max_length=3, max_length_while_converged=7)
  pair = jax.jit(jax.vmap(lambda s: ntm_jax.training.draws.paired_step_lengths(s, config)))
  length, longer = map(np.asarray, pair(jnp.arange(700)))
  # Uniform over 1..3 and 1..7: each length 700 / 3 and 700 / 7 times,
  # within about 4 standard deviations.
  np.testing.assert_allclose(np.bincount(length)[1:], [700 / 3] * 3, atol=50)
  np.testing.assert_allclose(np.bincount(longer)[1:], [100] * 7, atol=40)
  assert np.all(longer >= length)  # the time loop runs `longer` steps
  # A function of the step alone: drawn again, the same lengths.
  np.testing.assert_array_equal(np.asarray(pair(jnp.arange(700))[1]), longer)


@pytest.mark.slow  # an opt-in setting; the fast tier keeps the defaults
def test_max_length_while_converged_lengthens_only_converged_seeds_and_no_neighbour_changes_a_bit():
  config = dataclasses.replace(CONFIG, max_length_while_converged=7)
  states = train.init_states(MODEL, config, 3)
  chunk = _make_chunk(MODEL, config)
  by_states = {marks: chunk(states.replace(converged_step=jnp.array(marks, jnp.int32)))
               for marks in ((-1, -1, -1), (-1, 0, -1), (0, 0, 0))}
  mixed = by_states[(-1, 0, -1)]
  # The metric reports each seed's longest training length.
  np.testing.assert_array_equal(mixed[1]["train_length"], [[3] * 5, [7] * 5, [3] * 5])
  # At initialisation every output bit costs about 1 bit (logits near 0), so
  # a step's loss in bits per sequence is about 3 bits x its length: the
  # converged seed's follows the longer draw, the others' the shorter.
  length, longer = map(np.asarray, jax.vmap(
      lambda s: ntm_jax.training.draws.paired_step_lengths(s, config))(jnp.arange(5)))
  assert np.any(longer >= 2 * length)  # the two hypotheses differ at 2x or more
  losses = np.asarray(mixed[1]["loss"])
  np.testing.assert_allclose(losses[0] / (3 * length), 1.0, rtol=0.3)
  np.testing.assert_allclose(losses[1] / (3 * longer), 1.0, rtol=0.3)
  # Seed 0 (not converged) is bit-identical whether its neighbour is
  # converged (training on longer sequences beside it) or not; seed 1
  # (converged) whether its neighbours are converged or not.
  for seed, other in ((0, (-1, -1, -1)), (1, (0, 0, 0))):
    for a, b in zip(_leaves((mixed[0].params, mixed[1]["loss"])),
                    _leaves((by_states[other][0].params, by_states[other][1]["loss"]))):
      np.testing.assert_array_equal(a[seed], b[seed])


@pytest.mark.slow  # an opt-in setting; the fast tier keeps the defaults
def test_each_step_trains_on_the_memory_size_its_step_draws():
  config = dataclasses.replace(CONFIG, seeds=2, eval_every=3)
  states = train.init_states(MODEL, config, 2)

  def run(sizes):
    chunk = train.make_seed_parallel(functools.partial(
        train.train_chunk, task=TASK, model_config=MODEL,
        config=dataclasses.replace(config, train_memory_sizes=sizes)), in_axes=(0, None))
    return chunk(states, jnp.int32(0))

  default = run(())
  # One size, the model's own: the default run, bit for bit.
  own = run((8,))
  for a, b in zip(_leaves((default[0].params, default[1]["loss"])),
                  _leaves((own[0].params, own[1]["loss"]))):
    np.testing.assert_array_equal(a, b)
  # Two sizes in either order: at step 0 (the same parameters) exactly the
  # order whose draw points at 8 rows gives the default's loss.
  draw = int(ntm_jax.training.draws.step_memory_index(
      0, dataclasses.replace(config, train_memory_sizes=(8, 16))))
  for sizes in ((8, 16), (16, 8)):
    same = np.array_equal(run(sizes)[1]["loss"][:, 0], default[1]["loss"][:, 0])
    assert same == (sizes[draw] == 8), (sizes, draw)
  draws = np.asarray(jax.vmap(lambda s: ntm_jax.training.draws.step_memory_index(
      s, dataclasses.replace(config, train_memory_sizes=(8, 16, 32))))(jnp.arange(600)))
  np.testing.assert_allclose(np.bincount(draws), [200] * 3, atol=50)


@pytest.mark.slow
def test_the_eval_memory_changes_the_evaluation_and_nothing_else():
  config = dataclasses.replace(CONFIG, seeds=2, eval_every=3)
  states = train.init_states(MODEL, config, 2)
  plain = _make_chunk(MODEL, config)(states)
  wide = _make_chunk(MODEL, dataclasses.replace(config, eval_memory_size=64))(states)
  # Training never sees the evaluation's memory: the same losses, bit for bit.
  np.testing.assert_array_equal(plain[1]["loss"], wide[1]["loss"])
  for a, b in zip(_leaves(plain[0].params), _leaves(wide[0].params)):
    np.testing.assert_array_equal(a, b)
  # The evaluation ran on 64 rows instead of 8: addressing over more rows
  # gives other outputs on the same sequences.
  assert not np.array_equal(plain[2]["eval_loss"], wide[2]["eval_loss"])
  import ntm_jax.runs.summary as summary
  from ntm_jax.config import ExperimentConfig
  experiment = ExperimentConfig(task="copy", model=MODEL,
                                train=dataclasses.replace(config, eval_memory_size=64))
  assert "with 64 memory rows" in summary.reported_parameters(experiment)


# seed groups ------------------------------------------------------------------


@pytest.mark.parametrize("local_seeds,target,expected", [
    (15, 4, 5),     # divisors 3, 5, 15: 3 and 5 tie, the larger wins
    (16, 4, 4), (50, 4, 5), (8, 4, 4), (6, 4, 3),
    (13, 4, 13),    # prime: all together, never one seed at a time
    (3, 4, 3), (1, 4, 1),
    (30, None, 30),
    (4, 1, 1), (13, 1, 1), (8, 2, 2),  # a target below 3 is honoured
])
def test_seeds_per_group_is_the_divisor_nearest_the_target(local_seeds, target, expected):
  assert train.seeds_per_group(local_seeds, target) == expected


def test_the_lstm_baseline_runs_one_seed_at_a_time_on_a_cpu_and_the_ntm_in_groups():
  lstm = LSTMConfig(input_size=4, output_size=3)
  assert train.default_group_target("cpu", lstm) == 1
  assert train.default_group_target("cpu", MODEL) == 4
  assert train.default_group_target("cpu") == 4
  assert train.default_group_target("gpu", lstm) is None
  assert train.default_group_target("tpu", MODEL) is None


@pytest.mark.slow
def test_seeds_run_in_groups_give_the_same_results_as_all_at_once():
  states = train.init_states(MODEL, CONFIG, 6)
  results = []
  for target in (3, None):  # two groups of 3, then all 6 at once
    chunk = train.make_seed_parallel(functools.partial(
        train.train_chunk, task=TASK, model_config=MODEL, config=CONFIG),
        group_target=target)
    new_states, metrics, evals = chunk(states)
    results.append(_leaves((new_states.params, metrics["loss"], evals["eval_loss"])))
  for grouped, together in zip(*results):
    np.testing.assert_allclose(grouped, together, rtol=1e-5, atol=1e-6)


def test_restore_best_on_collapse_puts_a_seed_that_lost_convergence_back_on_its_best():
  # converge_threshold tiny: this chunk's evaluation is above it, the second
  # in a row (above_count 1 = patience - 1), so the converged seed loses it.
  config = dataclasses.replace(CONFIG, restore_best_on_collapse=True, converge_threshold=1e-9)
  state = train.init_state(jax.random.PRNGKey(0), MODEL, config)
  best = jax.tree_util.tree_map(lambda p: p * 0.5 + 0.01, state.params)
  state = state.replace(best_params=best, best_step=jnp.int32(3), best_eval=jnp.float32(0.0),
                        best_cost=jnp.float32(0.0), converged_step=jnp.int32(2),
                        first_converged_step=jnp.int32(2), above_count=jnp.int32(1))
  chunk_fn = jax.jit(functools.partial(ntm_jax.training.step.train_chunk, task=TASK,
                                       model_config=MODEL, config=config))
  restored = chunk_fn(state)[0]
  for got, want in zip(_leaves(restored.params), _leaves(best)):
    np.testing.assert_array_equal(got, want)
  fresh = train.make_optimizer(config).init(best)
  for got, want in zip(_leaves(restored.opt_state), _leaves(fresh)):
    np.testing.assert_array_equal(got, want)
  assert int(restored.collapses) == 1 and int(restored.converged_step) == 3
  assert int(restored.above_count) == 0 and float(restored.last_eval) > 1e-9
  # Off (the default), the same chunk leaves the trained parameters and
  # marks the seed not converged.
  plain = jax.jit(functools.partial(
      ntm_jax.training.step.train_chunk, task=TASK, model_config=MODEL,
      config=dataclasses.replace(config, restore_best_on_collapse=False)))(state)[0]
  assert int(plain.collapses) == 1 and int(plain.converged_step) == -1
  assert not np.array_equal(_leaves(plain.params)[0], _leaves(best)[0])
  # A seed that keeps convergence is not touched.
  kept = chunk_fn(state.replace(above_count=jnp.int32(0)))[0]
  assert int(kept.collapses) == 0 and int(kept.converged_step) == 2
  assert not np.array_equal(_leaves(kept.params)[0], _leaves(best)[0])


@pytest.mark.slow  # an opt-in setting; the fast tier keeps the defaults
def test_average_while_converged_averages_only_a_converged_seed_and_is_what_is_reported():
  config = dataclasses.replace(CONFIG, average_while_converged=0.75)
  state = train.init_state(jax.random.PRNGKey(0), MODEL, config)
  old_average = jax.tree_util.tree_map(lambda p: p * 0.5 + 0.01, state.params)
  state = state.replace(average_params=old_average)
  step = jax.jit(lambda s: ntm_jax.training.step.train_step(s, TASK, MODEL, config)[0])
  converged = step(state.replace(converged_step=jnp.int32(0)))
  # 0.75 of the old average plus 0.25 of the new parameters, by hand.
  for got, old, new in zip(_leaves(converged.average_params), _leaves(old_average),
                           _leaves(converged.params)):
    np.testing.assert_allclose(got, 0.75 * old + 0.25 * new, rtol=1e-6, atol=1e-7)
  not_converged = step(state)
  for got, new in zip(_leaves(not_converged.average_params), _leaves(not_converged.params)):
    np.testing.assert_array_equal(got, new)
  # The evaluation judges the average and a best evaluation keeps it.
  chunk_fn = jax.jit(functools.partial(ntm_jax.training.step.train_chunk, task=TASK,
                                       model_config=MODEL, config=config))
  after = chunk_fn(state.replace(converged_step=jnp.int32(0)))[0]
  assert int(after.best_step) == config.eval_every
  for got, want in zip(_leaves(after.best_params), _leaves(after.average_params)):
    np.testing.assert_array_equal(got, want)
  assert not np.array_equal(_leaves(after.best_params)[0], _leaves(after.params)[0])
  # Off, the state has no average (the checkpoint format of older runs).
  assert train.init_state(jax.random.PRNGKey(0), MODEL, CONFIG).average_params is None


@pytest.mark.slow  # an opt-in setting; the fast tier keeps the defaults
def test_restore_optimizer_state_brings_back_the_best_evaluations_optimizer_state():
  config = dataclasses.replace(CONFIG, restore_best_on_collapse=True, converge_threshold=1e-9,
                               restore_optimizer_state=True)
  state = train.init_state(jax.random.PRNGKey(0), MODEL, config)
  best = jax.tree_util.tree_map(lambda p: p * 0.5 + 0.01, state.params)
  best_opt = jax.tree_util.tree_map(lambda x: x + 3, state.opt_state)  # recognisable
  state = state.replace(best_params=best, best_opt_state=best_opt, best_step=jnp.int32(3),
                        best_eval=jnp.float32(0.0), best_cost=jnp.float32(0.0),
                        converged_step=jnp.int32(2), above_count=jnp.int32(1))
  restored = jax.jit(functools.partial(ntm_jax.training.step.train_chunk, task=TASK,
                                       model_config=MODEL, config=config))(state)[0]
  for got, want in zip(_leaves((restored.params, restored.opt_state)), _leaves((best, best_opt))):
    np.testing.assert_array_equal(got, want)
  with pytest.raises(ValueError, match="restore_optimizer_state needs restore_best_on_collapse"):
    dataclasses.replace(CONFIG, restore_optimizer_state=True)


@pytest.mark.slow  # an opt-in setting; the fast tier keeps the defaults
def test_a_restore_keeps_the_count_of_skipped_spikes():
  config = dataclasses.replace(CONFIG, restore_best_on_collapse=True, converge_threshold=1e-9,
                               skip_spikes_while_converged=1e6)
  state = train.init_state(jax.random.PRNGKey(0), MODEL, config)
  state = state.replace(opt_state=state.opt_state._replace(skipped=jnp.int32(5)),
                        best_step=jnp.int32(3), best_eval=jnp.float32(0.0),
                        best_cost=jnp.float32(0.0), converged_step=jnp.int32(2),
                        above_count=jnp.int32(1))
  restored = jax.jit(functools.partial(ntm_jax.training.step.train_chunk, task=TASK,
                                       model_config=MODEL, config=config))(state)[0]
  assert int(restored.collapses) == 1
  assert int(restored.opt_state.applied) == 0 and int(restored.opt_state.skipped) == 5
