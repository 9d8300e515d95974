"""The copy sampler (ntm_jax.tasks.CopyTask) against a plain-Python rebuild.

Layout of one sequence of `length` vectors padded to T = 2 * max_length + 1:
steps 0 .. length-1 carry the data on the `bits` data channels, step `length`
carries only the delimiter channel, steps length+1 .. 2*length are the output
phase (targets replay the inputs in order, mask 1), everything else is zero.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax.tasks import CopyTask, make_task

BITS = 3
MAX_LENGTH = 5


def _as_lists(array):
  return np.asarray(array).tolist()


def _check_sequence(inputs, targets, mask, length, bits, max_length):
  """Plain-Python loops over one sequence's nested lists."""
  steps = 2 * max_length + 1
  assert len(inputs) == steps and len(targets) == steps and len(mask) == steps
  data = [inputs[t][:bits] for t in range(length)]  # the random bits
  for t in range(steps):
    assert len(inputs[t]) == bits + 1 and len(targets[t]) == bits
    for c in range(bits):
      value = inputs[t][c]
      if t < length:
        assert value in (0.0, 1.0), (t, c, value)
      else:
        assert value == 0.0, f"data channel {c} is {value} at step {t} >= length {length}"
    delimiter = inputs[t][bits]
    assert delimiter == (1.0 if t == length else 0.0), (t, delimiter)
    in_output = length + 1 <= t <= 2 * length
    assert mask[t] == (1.0 if in_output else 0.0), (t, mask[t])
    for c in range(bits):
      expected = data[t - length - 1][c] if in_output else 0.0
      assert targets[t][c] == expected, (t, c, targets[t][c], expected)


@pytest.mark.parametrize("seed,lengths", [
    (0, [1, MAX_LENGTH, 3, 2]),
    (1, [MAX_LENGTH, MAX_LENGTH, 1, 4]),
    (42, [2, 1, 1, MAX_LENGTH]),
])
def test_sampled_batch_matches_plain_python_layout(seed, lengths):
  task = CopyTask(bits=BITS)
  inputs, targets, mask = task.sample(jax.random.PRNGKey(seed), len(lengths),
                                      jnp.array(lengths), MAX_LENGTH)
  steps = 2 * MAX_LENGTH + 1
  assert inputs.shape == (len(lengths), steps, BITS + 1)
  assert targets.shape == (len(lengths), steps, BITS)
  assert mask.shape == (len(lengths), steps)
  assert inputs.dtype == targets.dtype == mask.dtype == jnp.float32
  inputs, targets, mask = _as_lists(inputs), _as_lists(targets), _as_lists(mask)
  for b, length in enumerate(lengths):
    _check_sequence(inputs[b], targets[b], mask[b], length, BITS, MAX_LENGTH)


@pytest.mark.parametrize("length", [1, 3, MAX_LENGTH])
def test_a_scalar_length_applies_to_the_whole_batch(length):
  task = CopyTask(bits=BITS)
  inputs, targets, mask = task.sample(jax.random.PRNGKey(7), 3, length, MAX_LENGTH)
  assert inputs.shape == (3, 2 * MAX_LENGTH + 1, BITS + 1)
  inputs, targets, mask = _as_lists(inputs), _as_lists(targets), _as_lists(mask)
  for b in range(3):
    _check_sequence(inputs[b], targets[b], mask[b], length, BITS, MAX_LENGTH)


def test_the_sequences_of_a_batch_and_of_two_keys_differ():
  task = CopyTask(bits=8)
  a, _, _ = task.sample(jax.random.PRNGKey(0), 4, 10, 10)
  b, _, _ = task.sample(jax.random.PRNGKey(1), 4, 10, 10)
  again, _, _ = task.sample(jax.random.PRNGKey(0), 4, 10, 10)
  np.testing.assert_array_equal(a, again)  # deterministic in the key
  assert not np.array_equal(a, b)
  rows = np.asarray(a)[:, :10, :8].reshape(4, -1)
  assert len({r.tobytes() for r in rows}) == 4


def test_one_compiled_program_serves_every_length():
  task = CopyTask(bits=BITS)
  sample = jax.jit(task.sample, static_argnames=("batch_size", "max_length"))
  rng = jax.random.PRNGKey(0)
  for lengths in ([1, 1], [2, 5], [MAX_LENGTH, MAX_LENGTH], [4, 3]):
    inputs, targets, mask = sample(rng, batch_size=2, length=jnp.array(lengths, jnp.int32),
                                   max_length=MAX_LENGTH)
    np.testing.assert_array_equal(np.asarray(mask).sum(axis=1), lengths)
    eager = task.sample(rng, 2, jnp.array(lengths, jnp.int32), MAX_LENGTH)
    for got, want in zip((inputs, targets, mask), eager):
      np.testing.assert_array_equal(got, want)
  assert sample._cache_size() == 1


def test_bits_are_balanced_coin_flips():
  task = CopyTask(bits=8)
  inputs, targets, mask = task.sample(jax.random.PRNGKey(3), 512, 20, 20)
  data = np.asarray(inputs)[:, :20, :8]  # 81,920 bits; std of the mean ~0.0017
  assert abs(data.mean() - 0.5) < 0.01
  # ... on every channel and at every position too (std ~0.007 each).
  assert np.all(np.abs(data.mean(axis=(0, 1)) - 0.5) < 0.03)
  assert np.all(np.abs(data.mean(axis=(0, 2)) - 0.5) < 0.03)
  # Targets carry exactly the same bits.
  assert np.asarray(targets).sum() == data.sum()
  assert np.asarray(mask).sum() == 512 * 20


def test_task_sizes_and_registry():
  task = CopyTask(bits=6)
  assert (task.input_size, task.output_size) == (7, 6)
  assert task.sequence_steps(10) == 21
  assert task.memory_needed(10) == 10
  assert make_task("copy", bits=3) == CopyTask(bits=3)
  with pytest.raises(ValueError, match="unknown task 'nope'"):
    make_task("nope")


def test_make_task_resolves_an_import_path_module_colon_class():
  assert make_task("ntm_jax.tasks.copy:CopyTask", bits=5) == CopyTask(bits=5)


def _one_line_error(name, **options):
  with pytest.raises(ValueError) as error:
    make_task(name, **options)
  message = str(error.value)
  assert "\n" not in message, message
  return message


def test_make_task_names_what_is_wrong_in_one_line(tmp_path, monkeypatch):
  assert "choose one of" in _one_line_error("nope")
  assert "MODULE:CLASS" in _one_line_error("nope")
  message = _one_line_error("no_such_module_for_ntm_tests:Task")
  assert "cannot import 'no_such_module_for_ntm_tests'" in message
  assert "PYTHONPATH" in message
  assert _one_line_error("ntm_jax.tasks.copy:Nope") == (
      "task 'ntm_jax.tasks.copy:Nope': module 'ntm_jax.tasks.copy' has no 'Nope'")
  assert _one_line_error("copy", bitz=3).startswith("bad options for task 'copy'")
  # A class that is not a task: the protocol members it lacks are named.
  message = _one_line_error("collections:OrderedDict")
  assert "lacks ['input_size', 'output_size'" in message and "Task" in message
  # The user's module failing at import is reported, not raised as it is.
  (tmp_path / "broken_task_for_ntm_tests.py").write_text("raise RuntimeError('oops')\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  message = _one_line_error("broken_task_for_ntm_tests:Task")
  assert "RuntimeError: oops" in message
