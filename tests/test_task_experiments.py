"""Every task trains end to end through the shared engine on tiny settings,
and its summary carries what that task reports (optimal cost, extra tests,
accuracy), for the NTM and the LSTM baseline.

One run per task (2 seeds, 4 steps, a tiny model): seconds each, nearly all
of it compiling. The unary repeat encoding is checked in test_task_samplers.
"""
import dataclasses

import numpy as np
import pytest
from absl.testing import flagsaver

from ntm_jax import ExperimentConfig, LSTMConfig, NTMConfig
import ntm_jax.runs.engine as experiment
import ntm_jax.training as train
from ntm_jax.tasks import make_task

from conftest import load_experiment

# (task, options, max_length, test_lengths, min_length)
TASKS = [
    ("repeat_copy", {"bits": 3, "max_repeats": 3, "test_repeats": (4,)}, 3, (2, 4), 1),
    ("associative_recall", {"bits": 3, "item_vectors": 2}, 3, (2, 5), 2),
    ("ngrams", {"order": 3}, 12, (12,), 12),
    ("priority_sort", {"bits": 3}, 5, (5, 10), 5),
    ("dyck", {}, 6, (4, 12), 1),
]
RECALL = next(t for t in TASKS if t[0] == "associative_recall")  # 5 inputs, 3 outputs


def _config(task_name, options, max_length, test_lengths, min_length, model_kind="ntm"):
  task = make_task(task_name, **options)
  if model_kind == "ntm":
    model = NTMConfig(input_size=task.input_size, output_size=task.output_size,
                      controller_size=8, memory_rows=12, memory_width=4)
  else:
    model = LSTMConfig(input_size=task.input_size, output_size=task.output_size,
                       size=8, layers=2)
  return ExperimentConfig(
      task=task_name, task_options=tuple(sorted(options.items())), model=model,
      train=train.TrainConfig(seeds=2, steps=4, batch_size=2, min_length=min_length,
                              max_length=max_length, eval_every=2, eval_batch=4,
                              test_lengths=test_lengths, test_batch=4,
                              test_memory_size=12),
      checkpoint_every=2)


def _run(config, tmp_path):
  return experiment.run(config, str(tmp_path), progress=False, log=lambda _: None)


@pytest.mark.slow
@pytest.mark.parametrize("task_name, options, max_length, test_lengths, min_length", TASKS,
                         ids=[f"{t[0]}-{t[1].get('encoding', '')}" for t in TASKS])
def test_task_trains_through_the_engine_and_reports_its_tests(
    tmp_path, task_name, options, max_length, test_lengths, min_length):
  config = _config(task_name, options, max_length, test_lengths, min_length)
  summary = _run(config, tmp_path)
  agg = summary["aggregate"]
  assert summary["task"] == task_name and agg["seeds"] == 2
  for seed in summary["seeds"]:
    assert not seed["diverged"]
    assert set(seed["bit_errors_by_length"]) == {str(n) for n in test_lengths}
    bits = np.array(list(seed["bits_by_length"].values()), float)
    assert np.all(np.isfinite(bits)) and np.all(bits > 0)
  task = config.make_task()
  variants = set(getattr(task, "test_variants", dict)())
  assert set(agg.get("variants", {})) == variants
  for seed in summary["seeds"]:
    assert set(seed.get("variants", {})) == variants
  if task_name == "ngrams":
    assert agg["converge_metric"] == "excess_bits"
    optimal = agg["median_optimal_bits_by_length"]["12"]
    # 11 predictions; the optimal predictor pays at most 1 bit for each of
    # the first order-1 = 2, and less than 1 bit on average after.
    assert 0 < optimal < 11
  else:
    assert agg["converge_metric"] == "bit_errors"
    assert "median_optimal_bits_by_length" not in agg
  if task_name == "dyck":
    errors = np.array([list(s["bit_errors_by_length"].values()) for s in summary["seeds"]])
    assert np.all((errors >= 0) & (errors <= 1))  # a fraction of words misclassified


@pytest.mark.slow
def test_lstm_baseline_trains_on_a_paper_task_and_reports_its_size(tmp_path):
  config = _config(*RECALL, model_kind="lstm")
  summary = _run(config, tmp_path)
  assert summary["model"] == "lstm"
  # Two LSTM layers of 8 units on 5 inputs, and a linear read-out to 3.
  layer1 = 4 * 8 * (5 + 8) + 4 * 8
  layer2 = 4 * 8 * (8 + 8) + 4 * 8
  assert summary["aggregate"]["param_count"] == layer1 + layer2 + 8 * 3 + 3


def test_lengths_below_a_tasks_minimum_are_refused_before_compiling():
  config = _config(*RECALL)
  bad = dataclasses.replace(config, train=dataclasses.replace(config.train, min_length=1))
  with pytest.raises(ValueError, match="needs lengths >= 2"):
    experiment.validate(bad)


@pytest.mark.parametrize("module", ["repeat_copy", "associative_recall", "ngrams",
                                    "priority_sort", "dyck"])
def test_each_experiment_builds_a_valid_config_from_its_default_flags(module):
  from absl import flags
  from experiments import common
  options = getattr(load_experiment(module), "task_options", ())
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS([module])
    config = common.config_from_flags(module, options)
  assert config.task == module
  task = config.make_task()
  assert (config.model.input_size, config.model.output_size) == (task.input_size,
                                                                  task.output_size)
  for kind in ("lstm",):
    with flagsaver.flagsaver(model=kind):
      flags.FLAGS([module])
      assert common.config_from_flags(module, options).model_kind == kind


def _fake_run(path, batch_size, evals, model_kind="ntm"):
  """A run directory with config.json and metrics.jsonl holding `evals`:
  {step: [eval_loss per seed]} (eval bit errors = loss / 10)."""
  import json
  config = _config(*RECALL, model_kind=model_kind)
  config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                 batch_size=batch_size))
  path.mkdir()
  (path / "config.json").write_text(json.dumps(config.to_json()))
  with open(path / "metrics.jsonl", "w") as f:
    for step in range(1, max(evals) + 1):
      row = {"step": step, "loss": [1.0, 1.0]}
      if step in evals:
        row["eval_loss"] = evals[step]
        row["eval_bit_errors"] = [None if v is None else v / 10 for v in evals[step]]
      f.write(json.dumps(row) + "\n")
  return str(path)


def test_runs_are_compared_at_equal_training_sequences(tmp_path):
  import ntm_jax.runs.compare as compare
  # Batch 2: evaluations at 4, 8, 12 sequences; batch 4: at 8, 16.
  ntm = _fake_run(tmp_path / "ntm", 2, {2: [9.0, 7.0], 4: [5.0, 3.0], 6: [1.0, 1.0]})
  lstm = _fake_run(tmp_path / "lstm", 4, {2: [8.0, None], 4: [6.0, 2.0]}, "lstm")
  result = compare.at_equal_sequences([ntm, lstm])
  # The NTM reached 12 sequences and the LSTM 16: compare at 12, with the
  # NTM's evaluation at 12 and the LSTM's last one at or below 12 (at 8).
  assert result["sequences"] == 12
  by_model = {r["model"]: r for r in result["runs"]}
  assert by_model["ntm"]["sequences"] == 12 and by_model["ntm"]["median_eval_bits"] == 1.0
  assert by_model["lstm"]["sequences"] == 8
  assert by_model["lstm"]["median_eval_bits"] == 8.0  # the diverged seed's None is skipped
  assert by_model["lstm"]["median_eval_bit_errors"] == pytest.approx(0.8)
  assert "12 training sequences" in compare.format_comparison(result)


def test_a_diverged_seed_leaves_the_comparison_from_its_divergence_on(tmp_path):
  import json
  import ntm_jax.runs.compare as compare
  # Seed 1 diverged at step 3: frozen at broken parameters, it evaluates to
  # huge finite costs that must not move the median.
  ntm = _fake_run(tmp_path / "ntm", 2, {2: [9.0, 7.0, 5.0], 4: [4.0, 1e14, 2.0]})
  (tmp_path / "ntm" / "summary.json").write_text(json.dumps(
      {"seeds": [{"diverged_step": None}, {"diverged_step": 3}, {"diverged_step": None}]}))
  lstm = _fake_run(tmp_path / "lstm", 2, {2: [8.0, 8.0], 4: [6.0, 6.0]}, "lstm")
  curve = compare.eval_curve(ntm)
  assert curve[0][1] == 7.0  # before step 3 every seed counts: median of 9, 7, 5
  assert curve[1][1] == 3.0  # then the median of 4 and 2 alone
  result = compare.at_equal_sequences([ntm, lstm])
  assert {r["model"]: r["median_eval_bits"] for r in result["runs"]} == {"ntm": 3.0, "lstm": 6.0}
