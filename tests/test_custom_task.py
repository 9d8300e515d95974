"""A task of the user's own, outside the package: examples/reverse_copy.py.

The fast test checks its sampler against a plain-Python reverse copy; the
slow one runs WORKSPACE.md's "Add a task" commands as written (train,
resume, inspect from another directory) and checks what they leave behind.
"""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, run_python

EXAMPLES = os.path.join(ROOT, "examples")
sys.path.insert(0, EXAMPLES)
from reverse_copy import ReverseCopyTask  # noqa: E402  (lives outside the package)

TASK = "reverse_copy:ReverseCopyTask"
SMALL = ["--seeds", "2", "--steps", "100", "--eval_every", "50", "--max_length", "5",
         "--test_lengths", "5,10", "--memory_rows", "16", "--test_memory_size", "16",
         "--controller_size", "16", "--test_batch", "4", "--eval_batch", "4",
         "--plots=false", "--progress=false"]


def _reference(vectors, max_length):
  """Plain-Python reverse copy of one sequence of l = len(vectors) bit
  vectors, padded to 2 * max_length + 1 steps: (inputs, targets, mask) as
  nested lists."""
  l, bits = len(vectors), len(vectors[0])
  steps = 2 * max_length + 1
  silent = [0.0] * bits
  inputs, targets, mask = [], [], []
  for t in range(steps):
    data = vectors[t] if t < l else silent
    inputs.append(list(data) + [1.0 if t == l else 0.0])
    scored = l < t <= 2 * l
    targets.append(list(vectors[2 * l - t]) if scored else silent)
    mask.append(1.0 if scored else 0.0)
  return inputs, targets, mask


def test_sample_is_the_input_reversed_and_scored_only_on_the_output_phase():
  task = ReverseCopyTask(bits=4)
  max_length = 6
  lengths = jnp.array([1, 2, 5, 6])
  sample = jax.jit(task.sample, static_argnums=(1, 3))
  inputs, targets, mask = (np.asarray(x) for x in
                           sample(jax.random.PRNGKey(3), 4, lengths, max_length))
  steps = task.sequence_steps(max_length)
  assert inputs.shape == (4, steps, task.input_size)
  assert targets.shape == (4, steps, task.output_size)
  assert mask.shape == (4, steps)
  for b, l in enumerate(lengths.tolist()):
    vectors = inputs[b, :l, :task.bits].tolist()  # the data the sampler drew
    want_inputs, want_targets, want_mask = _reference(vectors, max_length)
    np.testing.assert_array_equal(inputs[b], want_inputs)
    np.testing.assert_array_equal(targets[b], want_targets)
    np.testing.assert_array_equal(mask[b], want_mask)
    assert mask[b].sum() == l


def test_sample_draws_random_bits_and_differs_from_a_plain_copy():
  task = ReverseCopyTask(bits=8)
  inputs, targets, mask = task.sample(jax.random.PRNGKey(0), 64, 5, 5)
  data = np.asarray(inputs[:, :5, :8])
  assert 0.4 < data.mean() < 0.6  # fair coin flips
  out = np.asarray(targets[:, 6:11])
  np.testing.assert_array_equal(out, data[:, ::-1])
  assert not np.array_equal(out, data)  # 64 x 5 x 8 random bits are not palindromes


@pytest.mark.slow
def test_train_resume_and_inspect_a_task_of_ones_own(tmp_path):
  run_dir = str(tmp_path / "run")
  # As WORKSPACE.md writes them: from the repository root, examples/ on PYTHONPATH.
  from_root = {"PYTHONPATH": "examples"}
  trained = run_python("-m", "experiments.train", "--task", TASK, *SMALL,
                       "--out_dir", run_dir, env=from_root)
  assert trained.returncode == 0, trained.stderr[-3000:]
  with open(os.path.join(run_dir, "config.json")) as f:
    config = json.load(f)
  assert config["task"] == TASK
  assert config["train"]["steps"] == 100

  resumed = run_python("-m", "experiments.train", "--resume", "--steps", "150",
                       "--progress=false", "--out_dir", run_dir, env=from_root)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  with open(os.path.join(run_dir, "config.json")) as f:
    assert json.load(f)["train"]["steps"] == 150
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == list(range(1, 151))  # the first 100 kept, 50 more appended
  with open(os.path.join(run_dir, "summary.json")) as f:
    summary = json.load(f)
  assert summary["task"] == TASK and len(summary["seeds"]) == 2
  assert summary["timing"]["steps_run"] == 50

  # From anywhere else: the task is found again through config.json's import
  # path, as long as its module (and experiments) are importable.
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  inspected = run_python("-m", "experiments.inspect", run_dir, "--seed", "0", "--length", "5",
                         cwd=str(elsewhere),
                         env={"PYTHONPATH": os.pathsep.join([EXAMPLES, ROOT])})
  assert inspected.returncode == 0, inspected.stderr[-3000:]
  lines = inspected.stdout.strip().splitlines()
  assert lines[0].startswith("seed index 0: ") and "bit errors per sequence at length 5" in lines[0]
  pngs = [line for line in lines[1:] if line.endswith(".png")]
  assert any("heads_seed0_L5" in p for p in pngs)
  assert all(os.path.getsize(p) > 0 for p in pngs)
  assert not os.listdir(elsewhere)  # the plots go into the run directory
