"""Every task's sequence of length l lives in its first sequence_steps(l)
steps (the contract in ntm_jax/tasks/base.py the truncated training loop
relies on), and running the model only over those steps gives the padded
run's loss and gradients.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax import models
from ntm_jax.config import LSTMConfig, NTMConfig
from ntm_jax.tasks import TASKS, base as task_base

MAX_LENGTH = 6
BATCH = 3


def _lengths(task):
  return sorted({task.min_length, task.min_length + 1, MAX_LENGTH})


@pytest.mark.parametrize("name", sorted(TASKS))
def test_sequence_steps_takes_a_traced_length(name):
  task = TASKS[name]()
  for length in _lengths(task):
    traced = jax.jit(task.sequence_steps)(jnp.int32(length))
    assert int(traced) == task.sequence_steps(length)
  # A longer sequence never needs fewer steps.
  steps = [task.sequence_steps(l) for l in range(task.min_length, MAX_LENGTH + 1)]
  assert steps == sorted(steps)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_sequence_occupies_its_first_sequence_steps(name):
  task = TASKS[name]()
  sample = jax.jit(lambda rng, l: task.sample(rng, BATCH, l, MAX_LENGTH))
  for length in _lengths(task):
    for seed in range(3):
      inputs, targets, mask = map(np.asarray, sample(jax.random.PRNGKey(seed),
                                                     jnp.int32(length)))
      used = task.sequence_steps(length)
      assert inputs.shape[1] == task.sequence_steps(MAX_LENGTH)
      assert np.all(mask[:, used:] == 0), (length, seed)
      assert np.all(targets[:, used:] == 0), (length, seed)
      assert np.all(inputs[:, used:] == 0), (length, seed)
      # Something is scored inside, else the bound would be vacuous.
      assert np.all(mask[:, :used].sum(axis=1) > 0)


def _model(task, kind):
  if kind == "lstm":
    return LSTMConfig(input_size=task.input_size, output_size=task.output_size, size=8)
  return NTMConfig(input_size=task.input_size, output_size=task.output_size,
                   controller_size=8, memory_rows=8, memory_width=4)


@pytest.mark.slow  # a compile per task and model
@pytest.mark.parametrize("kind", ["ntm", "lstm"])
@pytest.mark.parametrize("name", sorted(TASKS))
def test_truncated_run_gives_the_padded_loss_and_gradients(name, kind):
  task = TASKS[name]()
  model = _model(task, kind)
  params = models.init(jax.random.PRNGKey(1), model)
  length = task.min_length + 1
  inputs, targets, mask = task.sample(jax.random.PRNGKey(2), BATCH, length, MAX_LENGTH)

  def loss(params, steps):
    logits, _ = models.apply(params, inputs, model, length=steps)
    return jnp.mean(task_base.sequence_metrics(task, logits, targets, mask)["bits"])

  padded, padded_grads = jax.value_and_grad(loss)(params, None)
  truncated, grads = jax.jit(jax.value_and_grad(loss))(
      params, jnp.int32(task.sequence_steps(length)))
  np.testing.assert_allclose(truncated, padded, rtol=1e-5)
  for g, p in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(padded_grads)):
    np.testing.assert_allclose(g, p, rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # for an opt-in setting; the fast tier keeps the defaults
def test_steps_past_a_copy_sequence_change_no_bit_of_its_loss_or_gradients():
  # max_length_while_converged runs every seed's loop for the step's longer
  # length; a seed on the shorter one must get exactly the same numbers.
  task = TASKS["copy"](bits=3)
  model = NTMConfig(input_size=4, output_size=3, controller_size=8, memory_rows=8,
                    memory_width=4)
  params = models.init(jax.random.PRNGKey(0), model)
  inputs, targets, mask = task.sample(jax.random.PRNGKey(1), BATCH, 2, MAX_LENGTH)

  @jax.jit
  def loss_and_grads(steps):
    def loss(params):
      logits, _ = models.apply(params, inputs, model, length=steps)
      return jnp.mean(task_base.sequence_metrics(task, logits, targets, mask)["bits"])
    return jax.value_and_grad(loss)(params)

  own = jax.tree_util.tree_leaves(loss_and_grads(jnp.int32(task.sequence_steps(2))))
  longer = jax.tree_util.tree_leaves(loss_and_grads(jnp.int32(task.sequence_steps(5))))
  assert any(np.any(g != 0) for g in own[1:])
  for a, b in zip(own, longer):
    np.testing.assert_array_equal(a, b)
