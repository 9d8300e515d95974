"""The five paper/extension task samplers against plain-Python rebuilds.

For each task a batch with per-sequence lengths (the smallest and largest
allowed, padded to a larger max_length) is sampled; the random content (data
vectors, repeat counts, items and query, bits, priorities, words) is read back
from the sampler's own inputs, then the expected inputs, targets and mask are
rebuilt with loops from the task's specification and compared exactly.
Statistical properties use fixed keys and tolerances of several standard
deviations, so they are deterministic and robust.
"""
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax.tasks import (AssociativeRecallTask, DyckTask, NGramsTask,
                           PrioritySortTask, RepeatCopyTask)
from ntm_jax.tasks.dyck import _dyck_word

SEEDS = (0, 1, 2)


@functools.lru_cache(maxsize=None)
def _compiled_sample(task, batch_size, max_length):
  """One compiled sampler per (task, batch, max_length): far faster than eager."""
  return jax.jit(lambda rng, lengths: task.sample(rng, batch_size, lengths, max_length))


def _sample(task, seed, lengths, max_length):
  inputs, targets, mask = _compiled_sample(task, len(lengths), max_length)(
      jax.random.PRNGKey(seed), jnp.array(lengths, jnp.int32))
  steps = task.sequence_steps(max_length)
  batch = len(lengths)
  assert inputs.shape == (batch, steps, task.input_size)
  assert targets.shape == (batch, steps, task.output_size)
  assert mask.shape == (batch, steps)
  return np.asarray(inputs), np.asarray(targets), np.asarray(mask)


def _assert_bits(vectors):
  for vector in vectors:
    for value in vector:
      assert value in (0.0, 1.0), value


def _assert_equal_arrays(got, want):
  for name, g, w in zip(("inputs", "targets", "mask"), got, want):
    np.testing.assert_array_equal(g, w, err_msg=name)


# ---------------------------------------------------------------- repeat copy

RC_BITS, RC_MIN, RC_MAX, RC_MAX_LENGTH = 4, 2, 4, 6


def _repeat_copy_expected(data, repeats, length, task, max_length):
  """Plain-Python layout of one repeat-copy sequence (lists of lists)."""
  bits, steps = task.bits, task.sequence_steps(max_length)
  inputs = [[0.0] * (bits + 2) for _ in range(steps)]
  targets = [[0.0] * (bits + 1) for _ in range(steps)]
  mask = [0.0] * steps
  for t in range(length):
    inputs[t][:bits] = list(data[t])
  if task.encoding == "scalar":
    inputs[length][bits] = 1.0
    inputs[length][bits + 1] = (repeats - task.repeat_mean) / task.repeat_std
    start = length + 1
  else:
    for t in range(length, length + repeats):
      inputs[t][bits + 1] = 1.0
    inputs[length + repeats][bits] = 1.0
    start = length + repeats + 1
  for t in range(start, start + length * repeats):
    targets[t][:bits] = list(data[(t - start) % length])
    mask[t] = 1.0
  targets[start + length * repeats][bits] = 1.0
  mask[start + length * repeats] = 1.0
  return inputs, targets, mask


def _read_repeats(inputs_b, length, task):
  """The repeat count r from the count channel of one sequence."""
  count = [row[task.bits + 1] for row in inputs_b]
  if task.encoding == "scalar":
    raw = count[length] * task.repeat_std + task.repeat_mean
    repeats = round(raw)
    assert abs(raw - repeats) < 1e-4, f"count {count[length]} decodes to non-integer {raw}"
    return repeats
  repeats = 0
  while count[length + repeats] == 1.0:
    repeats += 1
  return repeats


def _check_repeat_copy_batch(task, seed, lengths, max_length):
  inputs, targets, mask = _sample(task, seed, lengths, max_length)
  expected = ([], [], [])
  for b, length in enumerate(lengths):
    rows = inputs[b].tolist()
    data = [row[:task.bits] for row in rows[:length]]
    _assert_bits(data)
    repeats = _read_repeats(rows, length, task)
    assert task.min_repeats <= repeats <= task.max_repeats, repeats
    for part, built in zip(expected, _repeat_copy_expected(data, repeats, length, task,
                                                           max_length)):
      part.append(built)
  want = tuple(np.array(part, np.float32) for part in expected)
  # The scalar count is a float: compare it with a tolerance, everything else exactly.
  np.testing.assert_allclose(inputs, want[0], rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(inputs[..., :-1], want[0][..., :-1])
  np.testing.assert_array_equal(targets, want[1])
  np.testing.assert_array_equal(mask, want[2])


@pytest.mark.parametrize("encoding", ["scalar", "unary"])
@pytest.mark.parametrize("seed", SEEDS)
def test_repeat_copy_matches_plain_python_layout(encoding, seed):
  task = RepeatCopyTask(bits=RC_BITS, min_repeats=RC_MIN, max_repeats=RC_MAX,
                        encoding=encoding)
  expected_steps = (RC_MAX_LENGTH + (RC_MAX if encoding == "unary" else 0) + 1
                    + RC_MAX_LENGTH * RC_MAX + 1)
  assert task.sequence_steps(RC_MAX_LENGTH) == expected_steps
  _check_repeat_copy_batch(task, seed, [1, 5, 3, 2], RC_MAX_LENGTH)


def test_repeat_copy_default_normalisation_is_the_uniform_mean_and_std():
  task = RepeatCopyTask(min_repeats=1, max_repeats=10)
  assert task.repeat_mean == 5.5
  assert math.isclose(task.repeat_std, math.sqrt((10 ** 2 - 1) / 12))
  # The normalised counts of the training repeats have mean 0 and variance 1.
  counts = [(r - task.repeat_mean) / task.repeat_std for r in range(1, 11)]
  assert abs(sum(counts)) < 1e-9
  assert math.isclose(sum(c * c for c in counts) / len(counts), 1.0)


@pytest.mark.parametrize("encoding", ["scalar", "unary"])
def test_repeat_counts_cover_the_training_range_uniformly(encoding):
  task = RepeatCopyTask(bits=2, min_repeats=RC_MIN, max_repeats=RC_MAX, encoding=encoding)
  lengths = [1, 2] * 150
  inputs, _, _ = _sample(task, 5, lengths, 2)
  repeats = [_read_repeats(inputs[b].tolist(), length, task)
             for b, length in enumerate(lengths)]
  counts = [repeats.count(r) for r in range(RC_MIN, RC_MAX + 1)]
  assert sum(counts) == len(lengths)  # none outside [min_repeats, max_repeats]
  for count in counts:  # 100 expected each, std ~8.2
    assert 60 <= count <= 140, counts


@pytest.mark.parametrize("encoding", ["scalar", "unary"])
def test_repeat_copy_test_variants_keep_the_training_normalisation(encoding):
  task = RepeatCopyTask(bits=RC_BITS, min_repeats=RC_MIN, max_repeats=RC_MAX,
                        encoding=encoding, test_repeats=(6, 8))
  variants = task.test_variants()
  assert sorted(variants) == ["repeats 6", "repeats 8"]
  for repeats, variant in ((6, variants["repeats 6"]), (8, variants["repeats 8"])):
    assert (variant.min_repeats, variant.max_repeats) == (repeats, repeats)
    assert variant.repeat_mean == task.repeat_mean == 3.0
    assert variant.repeat_std == task.repeat_std
    lengths = [1, 4, 2]
    inputs, _, _ = _sample(variant, 0, lengths, 4)
    for b, length in enumerate(lengths):
      if encoding == "scalar":
        np.testing.assert_allclose(
            inputs[b, length, RC_BITS + 1], (repeats - task.repeat_mean) / task.repeat_std,
            rtol=1e-6)
      assert _read_repeats(inputs[b].tolist(), length, variant) == repeats
    _check_repeat_copy_batch(variant, 1, lengths, 4)


def test_one_compiled_sampler_serves_every_length_array():
  task = RepeatCopyTask(bits=RC_BITS, min_repeats=RC_MIN, max_repeats=RC_MAX)
  traces = []

  def sample(rng, lengths):
    traces.append(1)  # runs only while tracing
    return task.sample(rng, 3, lengths, RC_MAX_LENGTH)

  sample = jax.jit(sample)
  rng = jax.random.PRNGKey(0)
  for lengths in ([1, 5, 3], [6, 2, 2]):
    inputs, targets, mask = sample(rng, jnp.array(lengths, jnp.int32))
    eager = task.sample(rng, 3, jnp.array(lengths, jnp.int32), RC_MAX_LENGTH)
    np.testing.assert_allclose(inputs, eager[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(targets, eager[1])
    np.testing.assert_array_equal(mask, eager[2])
    # The mask marks l * r output steps plus the end step of each sequence.
    repeats = [_read_repeats(np.asarray(inputs)[b].tolist(), n, task)
               for b, n in enumerate(lengths)]
    np.testing.assert_array_equal(np.asarray(mask).sum(axis=1),
                                  [n * r + 1 for n, r in zip(lengths, repeats)])
  assert len(traces) == 1


# --------------------------------------------------------- associative recall

AR_BITS, AR_VECTORS, AR_MAX_LENGTH = 6, 3, 7


def _recall_expected(items, query, length, task, max_length):
  v, bits, steps = task.item_vectors, task.bits, task.sequence_steps(max_length)
  inputs = [[0.0] * (bits + 2) for _ in range(steps)]
  targets = [[0.0] * bits for _ in range(steps)]
  mask = [0.0] * steps
  for i in range(length):
    inputs[(v + 1) * i][bits] = 1.0
    for p in range(v):
      inputs[(v + 1) * i + 1 + p][:bits] = list(items[i][p])
  q0 = (v + 1) * length
  inputs[q0][bits + 1] = 1.0
  for p in range(v):
    inputs[q0 + 1 + p][:bits] = list(items[query][p])
  inputs[q0 + v + 1][bits + 1] = 1.0
  for p in range(v):
    targets[q0 + v + 2 + p] = list(items[query + 1][p])
    mask[q0 + v + 2 + p] = 1.0
  return inputs, targets, mask


def _read_recall(rows, length, task):
  """(items, query index) of one episode, from its inputs."""
  v, bits = task.item_vectors, task.bits
  items = [[rows[(v + 1) * i + 1 + p][:bits] for p in range(v)] for i in range(length)]
  q0 = (v + 1) * length
  shown = [rows[q0 + 1 + p][:bits] for p in range(v)]
  matches = [i for i in range(length) if items[i] == shown]
  assert matches, "the query is none of the items"
  query = matches[0]
  assert query <= length - 2, f"the query is item {query}, the last of {length}"
  return items, query


@pytest.mark.parametrize("seed", SEEDS)
def test_associative_recall_matches_plain_python_layout(seed):
  task = AssociativeRecallTask(bits=AR_BITS, item_vectors=AR_VECTORS)
  v = AR_VECTORS
  assert task.sequence_steps(AR_MAX_LENGTH) == (v + 1) * AR_MAX_LENGTH + (v + 2) + v
  lengths = [2, 6, 4, 3]
  inputs, targets, mask = _sample(task, seed, lengths, AR_MAX_LENGTH)
  expected = ([], [], [])
  for b, length in enumerate(lengths):
    rows = inputs[b].tolist()
    items, query = _read_recall(rows, length, task)
    for item in items:
      _assert_bits(item)
    for part, built in zip(expected, _recall_expected(items, query, length, task,
                                                      AR_MAX_LENGTH)):
      part.append(built)
  _assert_equal_arrays((inputs, targets, mask),
                       tuple(np.array(part, np.float32) for part in expected))


def test_associative_recall_queries_every_item_but_the_last_uniformly():
  task = AssociativeRecallTask(bits=AR_BITS, item_vectors=AR_VECTORS)
  lengths = [4] * 300
  inputs, _, _ = _sample(task, 3, lengths, 5)
  queries = [_read_recall(inputs[b].tolist(), 4, task)[1] for b in range(len(lengths))]
  counts = [queries.count(j) for j in range(3)]
  assert sum(counts) == 300
  for count in counts:  # 100 expected each, std ~8.2
    assert 60 <= count <= 140, counts


# --------------------------------------------------------------------- ngrams

def _ngrams_optimal_bits(bits, order, alpha):
  """Plain-Python Bayesian predictor cost of one sequence (list of 0/1)."""
  context_bits = order - 1
  counts = {}  # context -> [zeros, ones] seen after it so far
  cost = 0.0
  for t in range(len(bits) - 1):
    target = bits[t + 1]
    if t + 1 < context_bits:
      p_one = 0.5
    else:
      context = tuple(bits[t - context_bits + 1:t + 1])
      zeros, ones = counts.get(context, [0, 0])
      p_one = (ones + alpha) / (zeros + ones + 2 * alpha)
      counts.setdefault(context, [0, 0])[target] += 1
    cost -= math.log2(p_one if target == 1 else 1.0 - p_one)
  return cost


@pytest.mark.parametrize("seed", SEEDS)
def test_ngrams_matches_plain_python_layout_and_optimal_cost(seed):
  task = NGramsTask(order=6, alpha=0.5)
  max_length = 60
  lengths = [2, 50, 7, 6, 31]
  inputs, targets, mask = _sample(task, seed, lengths, max_length)
  expected = ([], [], [])
  sequences = []
  for b, length in enumerate(lengths):
    bits = [row[0] for row in inputs[b].tolist()[:length]]
    _assert_bits([bits])
    sequences.append([int(bit) for bit in bits])
    want_inputs = [[bits[t] if t < length else 0.0] for t in range(max_length)]
    want_targets = [[bits[t + 1] if t < length - 1 else 0.0] for t in range(max_length)]
    want_mask = [1.0 if t < length - 1 else 0.0 for t in range(max_length)]
    for part, built in zip(expected, (want_inputs, want_targets, want_mask)):
      part.append(built)
    for t in range(length - 1):  # the target is the next input
      assert targets[b, t, 0] == inputs[b, t + 1, 0]
  _assert_equal_arrays((inputs, targets, mask),
                       tuple(np.array(part, np.float32) for part in expected))
  got = np.asarray(jax.jit(task.optimal_bits)(inputs, targets, mask))
  want = [_ngrams_optimal_bits(bits, task.order, task.alpha) for bits in sequences]
  np.testing.assert_allclose(got, want, rtol=1e-4)


def test_ngrams_optimal_cost_matches_plain_python_for_another_order_and_alpha():
  task = NGramsTask(order=3, alpha=1.0)
  lengths = [2, 3, 40, 25]
  inputs, targets, mask = _sample(task, 4, lengths, 40)
  got = np.asarray(jax.jit(task.optimal_bits)(inputs, targets, mask))
  want = [_ngrams_optimal_bits([int(row[0]) for row in inputs[b].tolist()[:length]],
                               task.order, task.alpha)
          for b, length in enumerate(lengths)]
  np.testing.assert_allclose(got, want, rtol=1e-4)


@pytest.mark.slow
def test_ngrams_optimal_cost_is_near_the_papers_and_first_bits_are_fair():
  task = NGramsTask()
  inputs, targets, mask = _sample(task, 0, [200] * 500, 200)
  cost = np.asarray(jax.jit(task.optimal_bits)(inputs, targets, mask))
  assert cost.shape == (500,)
  # 199 predictions; a coin costs 199 bits, the paper's optimum is ~133.
  assert 120 < cost.mean() < 145, cost.mean()
  assert np.all(cost < 199 + 30)
  first = inputs[:, :5, 0]  # 500 per position, std of the mean ~0.022
  assert np.all(np.abs(first.mean(axis=0) - 0.5) < 0.1), first.mean(axis=0)
  # All 32 five-bit prefixes occur (15.6 expected each).
  prefixes = {tuple(row) for row in first.astype(int).tolist()}
  assert len(prefixes) == 32


# -------------------------------------------------------------- priority sort

def _priority_sort_expected(data, priorities, length, task, max_length):
  bits, steps = task.bits, task.sequence_steps(max_length)
  inputs = [[0.0] * (bits + 2) for _ in range(steps)]
  targets = [[0.0] * bits for _ in range(steps)]
  mask = [0.0] * steps
  for t in range(length):
    inputs[t][:bits] = list(data[t])
    inputs[t][bits] = priorities[t]
  inputs[length][bits + 1] = 1.0
  order = sorted(range(length), key=lambda i: -priorities[i])
  for rank in range(length * 16 // 20):
    targets[length + 1 + rank] = list(data[order[rank]])
    mask[length + 1 + rank] = 1.0
  return inputs, targets, mask


@pytest.mark.parametrize("seed", SEEDS)
def test_priority_sort_matches_plain_python_layout(seed):
  task = PrioritySortTask(bits=8)
  max_length = 25
  assert task.min_length == 2
  assert [task.outputs(n) for n in (2, 5, 12, 20, 25)] == [1, 4, 9, 16, 20]
  assert task.sequence_steps(max_length) == max_length + 1 + 20
  lengths = [2, 5, 12, 20, 25]
  inputs, targets, mask = _sample(task, seed, lengths, max_length)
  expected = ([], [], [])
  for b, length in enumerate(lengths):
    rows = inputs[b].tolist()
    data = [row[:8] for row in rows[:length]]
    priorities = [row[8] for row in rows[:length]]
    _assert_bits(data)
    assert all(-1.0 <= p <= 1.0 for p in priorities), priorities
    assert len(set(priorities)) == length  # no ties: the order is well defined
    for part, built in zip(expected, _priority_sort_expected(data, priorities, length, task,
                                                             max_length)):
      part.append(built)
  _assert_equal_arrays((inputs, targets, mask),
                       tuple(np.array(part, np.float32) for part in expected))


def test_priorities_are_uniform_on_minus_one_to_one():
  task = PrioritySortTask(bits=1)
  inputs, _, _ = _sample(task, 6, [20] * 100, 20)
  priorities = inputs[:, :20, 1].ravel()  # 2000 draws
  assert priorities.min() >= -1.0 and priorities.max() <= 1.0
  assert abs(priorities.mean()) < 0.06  # std of the mean ~0.013
  histogram, _ = np.histogram(priorities, bins=4, range=(-1.0, 1.0))
  assert np.all(np.abs(histogram - 500) < 80), histogram  # std ~19


# ----------------------------------------------------------------------- dyck

def _is_balanced(word):
  depth = 0
  for character in word:
    depth += 1 if character == "(" else -1
    if depth < 0:
      return False
  return depth == 0


def _read_words(inputs, lengths):
  words = []
  for b, length in enumerate(lengths):
    rows = inputs[b].tolist()
    word = ""
    for t in range(length):
      assert rows[t][0] + rows[t][1] == 1.0 and rows[t][2] == 0.0, rows[t]
      word += "(" if rows[t][0] == 1.0 else ")"
    words.append(word)
  return words


@pytest.mark.parametrize("seed", SEEDS)
def test_dyck_matches_plain_python_layout_and_labels(seed):
  task = DyckTask()
  max_length = 14
  assert task.sequence_steps(max_length) == 15
  lengths = [1, 2, 7, 10, 12, 12, 12, 12]
  inputs, targets, mask = _sample(task, seed, lengths, max_length)
  steps = max_length + 1
  expected = ([], [], [])
  for word in _read_words(inputs, lengths):
    length = len(word)
    want_inputs = [[0.0, 0.0, 0.0] for _ in range(steps)]
    want_targets = [[0.0] for _ in range(steps)]
    want_mask = [0.0] * steps
    for t, character in enumerate(word):
      want_inputs[t]["()".index(character)] = 1.0
    want_inputs[length][2] = 1.0
    want_targets[length][0] = 1.0 if _is_balanced(word) else 0.0
    want_mask[length] = 1.0
    for part, built in zip(expected, (want_inputs, want_targets, want_mask)):
      part.append(built)
  _assert_equal_arrays((inputs, targets, mask),
                       tuple(np.array(part, np.float32) for part in expected))


_dyck_batch = jax.jit(lambda rng, lengths: DyckTask().sample(rng, 2000, lengths, 21))


def test_dyck_odd_words_are_never_balanced():
  lengths = [1, 3, 5, 7, 21] * 400
  inputs, targets, mask = _dyck_batch(jax.random.PRNGKey(0), jnp.array(lengths, jnp.int32))
  inputs, targets = np.asarray(inputs), np.asarray(targets)
  assert targets.sum() == 0
  words = _read_words(inputs, lengths)
  assert not any(_is_balanced(word) for word in words)
  # Odd words are off by one: l // 2 or l // 2 + 1 opening characters.
  for word in words:
    assert word.count("(") in (len(word) // 2, len(word) // 2 + 1), word


def test_dyck_even_words_have_both_labels_in_proportion():
  inputs, targets, mask = _dyck_batch(jax.random.PRNGKey(1), jnp.full((2000,), 20, jnp.int32))
  inputs, targets = np.asarray(inputs), np.asarray(targets)
  words = _read_words(inputs, [20] * 2000)
  labels = targets[:, 20, 0]
  np.testing.assert_array_equal(labels, [float(_is_balanced(w)) for w in words])
  positives = labels.mean()
  assert 0.4 < positives < 0.9, positives
  # The negatives are not all trivially unbalanced: some have as many "(" as ")".
  near_misses = [w for w, label in zip(words, labels) if not label and w.count("(") == 10]
  assert len(near_misses) > 100


def _words_from_steps(steps):
  return ["".join("(" if s > 0 else ")" for s in row if s != 0) for row in steps.tolist()]


@pytest.mark.parametrize("length", [0, 2, 4, 6, 10, 16])
def test_dyck_word_is_always_balanced_and_padded(length):
  max_length = 16
  keys = jax.random.split(jax.random.PRNGKey(length), 300)
  steps = np.asarray(jax.jit(jax.vmap(lambda k: _dyck_word(k, length, max_length)))(keys))
  assert steps.shape == (300, max_length)
  assert set(np.unique(steps).tolist()) <= {-1, 0, 1}
  assert np.all(steps[:, :length] != 0) and np.all(steps[:, length:] == 0)
  for word in _words_from_steps(steps):
    assert len(word) == length and _is_balanced(word), word


def test_dyck_word_is_uniform_over_the_five_words_of_length_six():
  draws = 5000
  keys = jax.random.split(jax.random.PRNGKey(0), draws)
  steps = np.asarray(jax.jit(jax.vmap(lambda k: _dyck_word(k, 6, 8)))(keys))
  words = _words_from_steps(steps)
  all_words = sorted("".join(w) for w in itertools.product("()", repeat=6)
                     if _is_balanced(w))
  assert len(all_words) == 5
  assert set(words) == set(all_words)
  counts = np.array([words.count(w) for w in all_words])
  frequencies = counts / draws  # std ~0.0057 each
  assert np.all(np.abs(frequencies - 0.2) < 0.03), dict(zip(all_words, frequencies))
  # Chi-square with 4 degrees of freedom; P(> 25) ~ 5e-5 for a uniform sampler.
  chi_square = ((counts - draws / 5) ** 2 / (draws / 5)).sum()
  assert chi_square < 25, chi_square
