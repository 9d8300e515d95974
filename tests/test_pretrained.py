"""Every shipped model (`ntm_jax/pretrained/<name>`) meets its task's bar on
fresh sequences of a small test size, scored here in NumPy from the model's
raw outputs (not with the library's own metrics).

The bars are the task's targets in the issue that shipped them: copy, repeat
copy and associative recall under 1 bit error per sequence, Dyck words at
least 99% right at training length; N-grams and priority sort as the comment
at their entry says.
"""
import math

import jax
import numpy as np
import pytest

import ntm_jax
import ntm_jax.pretrained as pretrained
from ntm_jax.tasks import make_task

SEQUENCES = 32


def _outputs(name, length, rng=2026, variant=None):
  """(logits, targets, mask) as NumPy arrays on `SEQUENCES` fresh sequences."""
  model_config, params = pretrained.load(name)
  info = pretrained.info(name)
  task = make_task(info["task"], **info["task_options"])
  if variant is not None:
    task = task.test_variants()[variant]
  inputs, targets, mask = task.sample(jax.random.PRNGKey(rng), SEQUENCES, length, length)
  memory = info["train"].get("test_memory_size")
  logits, _ = ntm_jax.apply(params, inputs, model_config, memory_size=memory)
  return np.asarray(logits, np.float64), np.asarray(targets), np.asarray(mask)


def _bit_errors(logits, targets, mask) -> np.ndarray:
  """[B] outputs on the wrong side of 1/2 where mask is 1."""
  wrong = (logits > 0) != (targets > 0.5)
  return (wrong * mask[..., None]).sum(axis=(1, 2))


def _bits(logits, targets, mask) -> np.ndarray:
  """[B] cross-entropy in bits of sigmoid outputs where mask is 1."""
  p = 1 / (1 + np.exp(-logits))
  p = np.where(targets > 0.5, p, 1 - p)
  return -(np.log2(np.maximum(p, 1e-300)) * mask[..., None]).sum(axis=(1, 2))


def _bayes_bits(inputs_bits, targets_bits, mask, context_bits=5, alpha=0.5) -> np.ndarray:
  """[B] cost of the optimal predictor, by counting in plain Python: at step
  t, the bits t-4..t are the context; predict (N1 + 1/2) / (N + 1) from the
  earlier bits that followed that context in the same sequence."""
  costs = []
  for bits, following, m in zip(inputs_bits, targets_bits, mask):
    counts, total = {}, 0.0
    for t in range(len(bits)):
      if not m[t]:
        continue
      if t < context_bits - 1:
        p_one = 0.5
      else:
        context = tuple(bits[t - context_bits + 1:t + 1])
        ones, seen = counts.get(context, (0, 0))
        p_one = (ones + alpha) / (seen + 2 * alpha)
        counts[context] = (ones + following[t], seen + 1)
      total -= math.log2(p_one if following[t] else 1 - p_one)
    costs.append(total)
  return np.array(costs)


def shipped(name):
  return pytest.param(name, marks=pytest.mark.skipif(
      name not in pretrained.available(), reason=f"no pretrained {name} shipped"))


@pytest.mark.parametrize("name, length, variant", [
    ("copy", 20, None), ("repeat_copy", 10, None), ("repeat_copy", 5, "repeats 15"),
    ("associative_recall", 6, None)])
def test_a_shipped_model_makes_under_one_bit_error_per_sequence(name, length, variant):
  if name not in pretrained.available():
    pytest.skip(f"no pretrained {name} shipped")
  errors = _bit_errors(*_outputs(name, length, variant=variant))
  assert errors.mean() < 1.0, errors


@pytest.mark.parametrize("name", [shipped("dyck")])
def test_the_shipped_dyck_model_classifies_99_percent_of_words_of_length_40(name):
  logits, targets, mask = _outputs(name, 40)
  assert mask.sum(axis=1).tolist() == [1.0] * SEQUENCES  # one answer per word
  assert _bit_errors(logits, targets, mask).mean() <= 0.01


@pytest.mark.parametrize("name", [shipped("ngrams")])
def test_the_shipped_ngrams_model_is_near_the_bayes_optimum(name):
  # Bar: its cost within 5% of the optimal predictor's on the same fresh
  # 200-bit sequences (the run's convergence threshold).
  model_config, params = pretrained.load(name)
  task = make_task("ngrams")
  inputs, targets, mask = task.sample(jax.random.PRNGKey(7), SEQUENCES, 200, 200)
  logits, _ = ntm_jax.apply(params, inputs, model_config)
  inputs, targets, mask = (np.asarray(a) for a in (inputs, targets, mask))
  model = _bits(np.asarray(logits, np.float64), targets, mask)
  optimum = _bayes_bits(inputs[..., 0].astype(int), targets[..., 0].astype(int), mask)
  np.testing.assert_allclose(optimum, np.asarray(task.optimal_bits(inputs, targets, mask)),
                             rtol=1e-4)  # the task's optimum agrees with the count above
  assert model.mean() / optimum.mean() - 1 < 0.05, (model.mean(), optimum.mean())


@pytest.mark.parametrize("name", [shipped("priority_sort")])
def test_the_shipped_priority_sort_model_beats_chance_by_far(name):
  # 16 outputs x 8 bits: a model that says 1/2 everywhere costs 128 bits and
  # gets 64 bits wrong on average. Bar: under half of chance's bit errors.
  logits, targets, mask = _outputs(name, 20)
  assert mask.sum(axis=1).tolist() == [16.0] * SEQUENCES
  assert _bit_errors(logits, targets, mask).mean() < 32
