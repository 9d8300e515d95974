"""experiments.evaluate: every seed of a run at lengths and memory sizes of
one's choosing, checked against the model applied by hand."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntm_jax
from experiments import evaluate
from ntm_jax.runs import checkpoints
from conftest import TINY_EXPERIMENT, run_python


def _by_hand(run_dir, seed, length, memory_size, sequences):
  """Mean bit errors per sequence, from the public apply and the task."""
  config, states = checkpoints.load_run(run_dir)
  task = config.make_task()
  rng = jax.random.PRNGKey(evaluate.KEY_BASE + seed)
  inputs, targets, mask = task.sample(rng, sequences, jnp.full((sequences,), length), length)
  logits, _ = ntm_jax.apply(checkpoints.seed_params(states, seed), inputs, config.model,
                            memory_size=memory_size, rng=jax.random.fold_in(rng, 1))
  wrong = (np.asarray(logits) > 0) != (np.asarray(targets) > 0.5)
  return float((wrong * np.asarray(mask)[..., None]).sum(axis=(1, 2)).mean())


def test_each_seed_at_each_length_equals_the_model_applied_by_hand(tiny_run_dir):
  results = evaluate.evaluate_run(tiny_run_dir, [3, 10], memory_size=12, sequences=4)
  assert results["seeds"] == [0, 1] and results["memory_sizes"] == [12, 12]
  for i in range(2):
    for j, length in enumerate([3, 10]):
      assert results["bit_errors"][i, j] == pytest.approx(
          _by_hand(tiny_run_dir, i, length, 12, 4), rel=1e-6)


def test_a_seed_and_a_length_get_the_same_sequences_whatever_else_is_asked(tiny_run_dir):
  alone = evaluate.evaluate_run(tiny_run_dir, [10], memory_size=12, sequences=4, seeds=[1])
  together = evaluate.evaluate_run(tiny_run_dir, [3, 10], memory_size=12, sequences=4)
  assert alone["seeds"] == [1]
  assert alone["bit_errors"][0, 0] == together["bit_errors"][1, 1]


def test_the_default_memory_is_the_runs_test_memory_raised_to_the_length(tiny_run_dir):
  rows = TINY_EXPERIMENT.train.test_memory_size  # 16
  results = evaluate.evaluate_run(tiny_run_dir, [6, rows + 4], sequences=2, seeds=[0])
  assert results["memory_sizes"] == [rows, rows + 4]  # a copy needs one row per item


def test_the_report_counts_seeds_under_one_bit_error():
  results = {"seeds": [0, 3, 5], "memory_sizes": [128, None],
             "bit_errors": np.array([[0.5, 7.0], [2.0, 0.0], [0.25, 1.0]])}
  lines = evaluate.format_results(results, [120, 500]).splitlines()
  assert lines == [
      "length 120, memory 128: 2/3 seeds under 1 bit error per sequence, median 0.50; "
      "per seed 0:0.50 3:2.00 5:0.25",
      "length 500: 1/3 seeds under 1 bit error per sequence, median 1.00; "
      "per seed 0:7.00 3:0.00 5:1.00"]


@pytest.mark.slow
def test_the_cli_prints_one_line_per_length_and_refuses_bad_input_in_one_line(tiny_run_dir):
  done = run_python("-m", "experiments.evaluate", tiny_run_dir, "--lengths", "3,10",
                    "--memory_size", "12", "--sequences", "4")
  assert done.returncode == 0, done.stderr
  expected = evaluate.format_results(
      evaluate.evaluate_run(tiny_run_dir, [3, 10], memory_size=12, sequences=4), [3, 10])
  assert done.stdout.strip() == expected
  for args, message in [(["--seeds", "2"], "--seeds must be seed indices in [0, 2)"),
                        (["--lengths", "0"], "--lengths must be >= 1"),
                        (["--lengths", "a"], "comma-separated integers")]:
    done = run_python("-m", "experiments.evaluate", tiny_run_dir, *args)
    assert done.returncode != 0 and message in done.stderr.strip().splitlines()[-1]
  done = run_python("-m", "experiments.evaluate", "/nonexistent")
  assert "is not a run directory" in done.stderr
