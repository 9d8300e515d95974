"""The copy sampler against a plain-Python rebuild of the paper's layout."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax.tasks import CopyTask, make_task


def _reference(data_bits, length, max_length):
  """Plain-Python inputs/targets/mask for one sequence of `length` vectors."""
  bits = len(data_bits[0])
  steps = 2 * max_length + 1
  inputs = [[0.0] * (bits + 1) for _ in range(steps)]
  targets = [[0.0] * bits for _ in range(steps)]
  mask = [0.0] * steps
  for t in range(length):
    inputs[t][:bits] = data_bits[t]
  inputs[length][bits] = 1.0  # the delimiter, on its own channel
  for t in range(length):
    targets[length + 1 + t] = list(data_bits[t])
    mask[length + 1 + t] = 1.0
  return inputs, targets, mask


@pytest.mark.parametrize("seed,lengths", [(0, [1, 4, 6]), (1, [6, 6, 2]), (7, [3, 1, 5])])
def test_copy_sample_matches_plain_python_layout(seed, lengths):
  task, max_length = CopyTask(bits=4), 6
  inputs, targets, mask = task.sample(jax.random.PRNGKey(seed), len(lengths),
                                      jnp.array(lengths), max_length)
  assert inputs.shape == (3, 13, 5) and targets.shape == (3, 13, 4) and mask.shape == (3, 13)
  for b, length in enumerate(lengths):
    data = np.asarray(inputs[b, :length, :4]).tolist()
    ref_inputs, ref_targets, ref_mask = _reference(data, length, max_length)
    np.testing.assert_array_equal(inputs[b], ref_inputs)
    np.testing.assert_array_equal(targets[b], ref_targets)
    np.testing.assert_array_equal(mask[b], ref_mask)


def test_copy_bits_are_fair_coin_flips():
  inputs, _, _ = CopyTask().sample(jax.random.PRNGKey(3), 256, 20, 20)
  assert abs(float(inputs[:, :20, :8].mean()) - 0.5) < 0.01


def test_one_compiled_sampler_serves_every_length():
  task = CopyTask()
  sample = jax.jit(functools.partial(task.sample, batch_size=2, max_length=20))
  for length in (1, 7, 20):
    _, _, mask = sample(jax.random.PRNGKey(0), length=jnp.asarray(length))
    np.testing.assert_array_equal(mask.sum(axis=1), [length, length])
  assert sample._cache_size() == 1


def test_unknown_task_is_a_one_line_error():
  with pytest.raises(ValueError, match="unknown task 'nope'"):
    make_task("nope")
