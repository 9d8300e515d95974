"""Strategy statistics: the head statistics on hand-built weight traces with
known answers, the copy task's statistics on a hand-built textbook copy,
ROC AUC and the best threshold against hand-computed cases, the copy hook
on real models, and `python -m experiments.strategy`.

Reads conftest's shared `tiny_run_dir` (copied before anything is written).
"""
import json
import math
import os
import shutil

import jax
import numpy as np
import pytest

import ntm_jax
import ntm_jax.analysis.head_statistics as hs
import ntm_jax.pretrained
from ntm_jax.analysis import strategy
from ntm_jax.runs import checkpoints
from ntm_jax.tasks import CopyTask
from ntm_jax.tasks.copy import STRATEGY_STATISTICS, sequence_strategy_statistics
from experiments import strategy as command
from tests.conftest import run_python


def path(rows, n):
  """[T, 1, n] one-hot weightings on the given rows, one per step."""
  return np.eye(n)[np.asarray(rows, int)][:, None, :]


# Head statistics ----------------------------------------------------------------


def test_a_head_stepping_one_row_per_step_drifts_1_with_every_shift_plus_1():
  w = path([126, 127, 0, 1, 2], 128)  # wraps around the last row
  np.testing.assert_array_equal(hs.moves(w)[:, 0], [1, 1, 1, 1])
  assert hs.drift(w) == 1.0
  assert hs.shift_fraction(w, 1) == 1.0
  assert hs.shift_fraction(w, -1) == 0.0


def test_a_parked_head_drifts_0_and_a_jump_counts_its_rows():
  assert hs.drift(path([3, 3, 3], 8)) == 0.0
  assert hs.shift_fraction(path([3, 3, 3], 8), 1) == 0.0
  assert hs.drift(path([0, 5, 5], 16)) == 2.5  # (5 + 0) / 2
  assert hs.shift_fraction(path([0, 1, 1, 2, 6], 16), 1) == 0.5
  assert math.isnan(hs.drift(path([3], 8)))  # no move to measure


def test_circular_offsets_are_signed_and_wrap():
  assert hs.circular_offset(0, 127, 128) == 1
  assert hs.circular_offset(127, 0, 128) == -1
  assert hs.circular_offset(64, 0, 128) == -64  # the range is [-64, 64)
  np.testing.assert_array_equal(hs.circular_offset([5, 2], [2, 5], 8), [3, -3])


def test_one_hot_weights_are_sharp_and_uniform_ones_have_log2_n_bits():
  one_hot = path([2, 5], 8)
  assert hs.peak(one_hot) == 1.0
  assert hs.entropy_bits(one_hot) == 0.0
  uniform = np.full((3, 1, 8), 1 / 8)
  assert hs.peak(uniform) == pytest.approx(1 / 8)
  assert hs.entropy_bits(uniform) == pytest.approx(3.0)
  halves = np.zeros((1, 1, 8))
  halves[0, 0, [1, 6]] = 0.5
  assert hs.entropy_bits(halves) == pytest.approx(1.0)


def test_rows_touched_counts_rows_above_the_threshold_at_some_step():
  assert hs.rows_touched(path([0, 1, 2, 1], 8)) == 3 / 8
  w = np.zeros((2, 1, 10))
  w[0, 0, :] = 0.1  # exactly the threshold: not touched
  w[1, 0, 4] = 0.5
  assert hs.rows_touched(w) == 0.1


def test_peak_agreement_and_window_means():
  assert hs.peak_agreement(path([1, 2, 3, 9], 16), path([1, 2, 4, 9], 16)) == 0.75
  assert math.isnan(hs.peak_agreement(path([], 16), path([], 16)))
  gate = np.arange(6.0)[:, None]
  assert hs.window_mean(gate, 1, 3) == 1.5
  assert math.isnan(hs.window_mean(gate, 6, 9))


# The copy task's statistics on a hand-built copy ----------------------------------


def textbook_copy(length=4, rows=16, direction=1, delimiter_row=None):
  """One sequence of a location-addressing copy: the write head steps one
  row per step in `direction` from row 0; the read head stays on row 0
  through the input and the delimiter, then steps along the written rows
  one step ahead of the output; the read gate is 0.9 over the delimiter and
  first two output steps and 0.2 elsewhere, beta 5 there and 1 elsewhere."""
  steps = 2 * length + 1
  write = [(direction * t) % rows for t in range(steps)]
  read = [0] * (length + 1) + [(direction * j) % rows for j in range(1, length + 1)]
  if delimiter_row is not None:
    read[length] = delimiter_row
  gate = np.full((steps, 1), 0.2)
  gate[length:length + 3] = 0.9
  return {"read_weights": path(read, rows), "write_weights": path(write, rows),
          "read_gate": gate, "read_key_strength": np.where(gate > 0.5, 5.0, 1.0)}


@pytest.mark.parametrize("direction", [1, -1])
def test_a_textbook_location_copy_scores_what_it_does(direction):
  stats = sequence_strategy_statistics(textbook_copy(direction=direction), 4)
  assert set(stats) == set(STRATEGY_STATISTICS)
  assert stats == pytest.approx({
      "delimiter_offset": 0.0, "read_alignment": 1.0, "read_drift_input": 0.0,
      "read_peak_input": 1.0, "read_gate_at_start": 0.9, "read_key_strength_at_start": 5.0,
      "read_gate_later_output": 0.2, "read_peak_output": 1.0,
      "read_unit_steps_output": 1.0, "write_direction": float(direction),
      "write_unit_steps_input": 1.0, "write_peak_input": 1.0, "write_entropy_input": 0.0,
      "memory_touched": 9 / 16})  # the write head visits 2 * 4 + 1 rows


def test_a_read_head_off_the_start_at_the_delimiter_shows_in_the_offset():
  stats = sequence_strategy_statistics(textbook_copy(delimiter_row=14), 4)
  assert stats["delimiter_offset"] == -2.0
  assert stats["read_alignment"] == 0.75  # vector 0 missed one step ahead
  # Reading on the output step itself instead (lag 0) aligns as well.
  lag0 = textbook_copy()
  lag0["read_weights"] = path([0] * 5 + [0, 1, 2, 3], 16)
  assert sequence_strategy_statistics(lag0, 4)["read_alignment"] == 1.0


# ROC AUC and thresholds ------------------------------------------------------------


@pytest.mark.parametrize("scores, positive, expected", [
    ([1, 2, 3, 4], [0, 0, 1, 1], 1.0),
    ([1, 2, 3, 4], [1, 1, 0, 0], 0.0),
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # 0.35 beats 0.1 only; 0.8 both
    ([1, 1, 2], [1, 0, 0], 0.25),                  # a tie counts half
    ([3, 3, 3, 3], [1, 0, 1, 0], 0.5),
    ([1, 2, 2, 3, 3], [0, 1, 0, 1, 0], (2 + 0.5 + 1 + 0.5) / 6),
])
def test_roc_auc_against_hand_counts(scores, positive, expected):
  assert strategy.roc_auc(scores, np.asarray(positive, bool)) == pytest.approx(expected)


def test_roc_auc_needs_both_classes():
  assert math.isnan(strategy.roc_auc([1, 2], [True, True]))
  assert math.isnan(strategy.roc_auc([], []))


def test_best_threshold_separates_and_counts():
  assert strategy.best_threshold([1, 2, 3, 4], np.array([0, 0, 1, 1], bool)) == {
      "threshold": 2.5, "direction": "above", "tp": 2, "fp": 0, "tn": 2, "fn": 0,
      "balanced_accuracy": 1.0}
  below = strategy.best_threshold([1, 2, 3, 4], np.array([1, 1, 0, 0], bool))
  assert (below["threshold"], below["direction"]) == (2.5, "below")
  # Cut 3.5 calls 2 of 3 failing and all 2 passing right: (2/3 + 1) / 2,
  # better than 1.5 ((1 + 1/2) / 2) or 2.5 ((2/3 + 1/2) / 2).
  mixed = strategy.best_threshold([1, 2, 3, 4, 5], np.array([0, 1, 0, 1, 1], bool))
  assert mixed == {"threshold": 3.5, "direction": "above", "tp": 2, "fp": 0, "tn": 2,
                   "fn": 1, "balanced_accuracy": pytest.approx(5 / 6)}
  tied = strategy.best_threshold([1, 1, 2, 2], np.array([0, 1, 1, 1], bool))
  assert (tied["threshold"], tied["tp"], tied["fp"], tied["tn"], tied["fn"]) == (1.5, 2, 0, 1, 1)
  assert strategy.best_threshold([2, 2], np.array([0, 1], bool))["threshold"] is None


def test_separation_pools_seeds_with_a_known_outcome_and_value():
  def record(value, errors):
    return {"bit_errors_L120": errors, "fails_L120": None if errors is None else errors >= 1,
            "statistics": {"a_train": value, "a_L120": 0.0}}
  records = [record(1.0, 0.0), record(2.0, 0.5), record(3.0, 4.0), record(None, 9.0),
             record(5.0, None)]
  out = strategy.separation(records)
  assert set(out) == {"a_train"}
  assert (out["a_train"]["n"], out["a_train"]["failing"], out["a_train"]["auc"]) == (3, 1, 1.0)
  assert out["a_train"]["threshold"] == 2.5


def test_a_fixed_rule_counts_flagged_seeds_against_their_outcome():
  def record(value, errors):
    return {"fails_L120": None if errors is None else errors >= 1,
            "statistics": {"offset_train": value}}
  # offsets 0, 0, 1, 2, 0.5 with outcomes pass, fail, fail, pass, fail; two not counted
  records = [record(0.0, 0.0), record(0.0, 3.0), record(1.0, 200.0), record(2.0, 0.2),
             record(0.5, 1.0), record(None, 5.0), record(4.0, None)]
  above = strategy.rule_counts(records, "offset_train", "above", 0.25)
  assert {k: above[k] for k in ("n", "flagged", "tp", "fp", "tn", "fn")} == {
      "n": 5, "flagged": 3, "tp": 2, "fp": 1, "tn": 1, "fn": 1}
  below = strategy.rule_counts(records, "offset_train", "below", 0.25)
  assert (below["flagged"], below["tp"], below["fp"], below["tn"], below["fn"]) == (2, 1, 1, 1, 2)


# The copy hook on real models ------------------------------------------------------


# One XLA compile is much cheaper than flax's op-by-op eager init.
_init = jax.jit(ntm_jax.init, static_argnums=1)


def _keys(suffixes):
  return {name + suffix for name in STRATEGY_STATISTICS for suffix in suffixes}


def test_the_copy_hook_on_a_random_model_gives_finite_documented_numbers(tiny_ntm):
  params = _init(jax.random.PRNGKey(0), tiny_ntm)
  stats = CopyTask(bits=3).strategy_statistics(params, tiny_ntm, train_length=3,
                                               long_length=6, memory_size=16, sequences=2)
  assert set(stats) == _keys(("_train", "_L6"))
  assert all(math.isfinite(v) for v in stats.values())
  lstm = ntm_jax.LSTMConfig(input_size=4, output_size=3, size=8, layers=1)
  lstm_params = _init(jax.random.PRNGKey(0), lstm)
  assert CopyTask(bits=3).strategy_statistics(lstm_params, lstm, 3, 6, 16, 2) == {}


def test_a_padded_probe_is_the_unpadded_run_cut_to_its_steps(tiny_ntm):
  params = _init(jax.random.PRNGKey(0), tiny_ntm)
  padded = hs.probe(params, tiny_ntm, CopyTask(bits=3), 3, 16, sequences=2, pad_to=6)
  assert padded["read_weights"].shape == (2, 7, 1, 16)
  logits, trace = ntm_jax.apply(params, padded["inputs"], tiny_ntm, memory_size=16,
                                return_trace=True)
  np.testing.assert_allclose(padded["logits"], logits, atol=1e-5)
  np.testing.assert_allclose(padded["read_weights"], trace["read_weights"], atol=1e-5)
  np.testing.assert_allclose(padded["write_gate"], trace["write_addressing"].gate, atol=1e-5)


def test_the_shipped_copy_model_copies_length_120_by_location():
  """The pretrained seed copies length 120 without an error: its read head
  must be on every vector's row, and its write head step a row at a time."""
  model_config, params = ntm_jax.pretrained.load("copy")
  stats = CopyTask().strategy_statistics(params, model_config, sequences=2)
  assert set(stats) == _keys(("_train", "_L120"))
  assert stats["read_alignment_L120"] == 1.0
  assert stats["write_unit_steps_input_L120"] > 0.95
  assert stats["write_peak_input_L120"] > 0.9


def test_every_copy_run_records_each_seeds_statistics_in_its_summary(
    tiny_run, tiny_experiment):
  recorded = [seed["strategy"] for seed in tiny_run.summary["seeds"]]
  assert len(recorded) == 2
  for seed in recorded:
    assert set(seed) == _keys(("_train", "_L120"))
    assert all(v is None or math.isfinite(v) for v in seed.values())
  with open(os.path.join(tiny_run.out_dir, "summary.json")) as f:
    assert [seed["strategy"] for seed in json.load(f)["seeds"]] == recorded
  assert tiny_run.summary["timing"]["strategy_s"] > 0
  # The same numbers probed again from the checkpoint on disk (the seeds'
  # best parameters): the engine measured what summary.json reports.
  _, states = checkpoints.load_run(tiny_run.out_dir)
  assert strategy.seed_statistics(tiny_experiment, states) == recorded
  assert strategy.run_statistics(tiny_run.out_dir) == dict(enumerate(recorded))
  no_hook = tiny_experiment.__class__(task="repeat_copy", model=tiny_experiment.model,
                                      train=tiny_experiment.train)
  assert strategy.seed_statistics(no_hook, states=None) is None


def test_a_run_without_recorded_statistics_is_probed_from_its_checkpoint(
    tiny_run_dir, tmp_path):
  run_dir = shutil.copytree(tiny_run_dir, str(tmp_path / "run"),
                            ignore=shutil.ignore_patterns(".lock"))
  summary_path = os.path.join(run_dir, "summary.json")
  with open(summary_path) as f:
    summary = json.load(f)
  recorded = [seed.pop("strategy") for seed in summary["seeds"]]
  with open(summary_path, "w") as f:
    json.dump(summary, f)
  assert strategy.run_statistics(run_dir) == dict(enumerate(recorded))


# python -m experiments.strategy ---------------------------------------------------


@pytest.fixture
def run_with_long_test(tiny_run_dir, tmp_path):
  """A copy of the tiny run whose summary says seed 0 passes length 120 and
  seed 1 fails it."""
  run_dir = shutil.copytree(tiny_run_dir, str(tmp_path / "run"),
                            ignore=shutil.ignore_patterns(".lock"))
  summary_path = os.path.join(run_dir, "summary.json")
  with open(summary_path) as f:
    summary = json.load(f)
  for seed, errors in zip(summary["seeds"], (0.0, 3.5)):
    seed["bit_errors_by_length"]["120"] = errors
  with open(summary_path, "w") as f:
    json.dump(summary, f)
  return run_dir


def test_the_command_writes_statistics_and_plots_and_prints_the_auc(run_with_long_test):
  lines = []
  records = command.report([run_with_long_test], log=lines.append)
  with open(os.path.join(run_with_long_test, "strategy.json")) as f:
    written = json.load(f)
  assert [s["bit_errors_L120"] for s in written["seeds"]] == [0.0, 3.5]
  assert [s["fails_L120"] for s in written["seeds"]] == [False, True]
  assert set(written["seeds"][1]["statistics"]) == _keys(("_train", "_L120"))
  assert written["probe"]["long_length"] == 120
  for name in ("strategy_train.png", "strategy_L120.png"):
    assert os.path.getsize(os.path.join(run_with_long_test, "plots", name)) > 0
  assert len(records) == 2
  printed = "\n".join(lines)
  assert "training-length statistics against failing length 120" in printed
  # One row per training-length statistic, each over both seeds, one failing.
  rows = [line for line in lines if line.split()[:1] and line.split()[0].endswith("_train")
          and len(line.split()) > 9]
  assert {row.split()[0] for row in rows} == _keys(("_train",))
  assert all(row.split()[1:3] == ["2", "1"] for row in rows)


def test_the_command_only_prints_when_it_cannot_write(run_with_long_test, monkeypatch):
  before = sorted(os.listdir(run_with_long_test)) + sorted(
      os.listdir(os.path.join(run_with_long_test, "plots")))
  monkeypatch.setattr(command, "_writable", lambda run_dir: False)
  lines = []
  command.report([run_with_long_test], log=lines.append)
  assert [line for line in lines if line.startswith("note:")] == [
      f"note: {run_with_long_test} is not writable: strategy.json and its plots not written"]
  assert before == sorted(os.listdir(run_with_long_test)) + sorted(
      os.listdir(os.path.join(run_with_long_test, "plots")))


def test_a_fixed_rule_is_printed_and_recorded(run_with_long_test):
  lines = []
  records = command.report([run_with_long_test], log=lines.append,
                           rule=command.parse_rule("delimiter_offset_train>-1"))
  # Every finite offset is above -1: each seed with a known outcome is flagged.
  known = [r for r in records if r["fails_L120"] is not None
           and r["statistics"].get("delimiter_offset_train") is not None]
  failing = sum(r["fails_L120"] for r in known)
  assert (len(known), failing) == (2, 1)  # the fixture's two seeds, one failing
  assert lines[-1].startswith(f"rule: fail if delimiter_offset_train > -1: flags "
                              f"{len(known)} of {len(known)} seeds, {failing} of them failing")
  with open(os.path.join(run_with_long_test, "strategy.json")) as f:
    recorded = json.load(f)["rule"]
  assert (recorded["flagged"], recorded["tp"], recorded["tn"], recorded["fn"]) == (
      len(known), failing, 0, 0)


@pytest.mark.parametrize("text", ["delimiter_offset_train", ">0.5", "x>abc", "x=1"])
def test_a_malformed_rule_is_refused_in_one_line(text):
  with pytest.raises(ValueError, match="--rule must be") as error:
    command.parse_rule(text)
  assert "\n" not in str(error.value)


def test_a_rule_on_an_unknown_statistic_writes_nothing(run_with_long_test):
  before = sorted(os.listdir(run_with_long_test))
  with pytest.raises(ValueError, match="record no statistic 'no_such_train'"):
    command.report([run_with_long_test], log=lambda line: None,
                   rule=command.parse_rule("no_such_train<3"))
  assert sorted(os.listdir(run_with_long_test)) == before and "strategy.json" not in before


def test_bad_run_dirs_are_refused_in_one_line(tmp_path, tiny_run_dir):
  (tmp_path / "empty").mkdir()
  unfinished = shutil.copytree(tiny_run_dir, str(tmp_path / "unfinished"),
                               ignore=shutil.ignore_patterns(".lock", "summary.json"))
  other_task = shutil.copytree(tiny_run_dir, str(tmp_path / "other_task"),
                               ignore=shutil.ignore_patterns(".lock", "checkpoints", "plots"))
  with open(os.path.join(other_task, "config.json")) as f:
    config = json.load(f)
  config.update(task="repeat_copy", task_options={})
  with open(os.path.join(other_task, "config.json"), "w") as f:
    json.dump(config, f)
  for run_dir, message in ((str(tmp_path / "missing"), "is not a directory"),
                           (str(tmp_path / "empty"), "is not a run directory"),
                           (unfinished, "has not finished"),
                           (other_task, "task 'repeat_copy' has no strategy_statistics")):
    with pytest.raises(ValueError, match=message) as error:
      command._check_inputs([run_dir])
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_the_command_end_to_end(run_with_long_test, tmp_path):
  result = run_python("-m", "experiments.strategy", run_with_long_test, "--table=false")
  assert result.returncode == 0, result.stderr
  assert "read_drift_input_train" in result.stdout
  assert os.path.exists(os.path.join(run_with_long_test, "strategy.json"))
  bad = run_python("-m", "experiments.strategy", str(tmp_path / "nothing"))
  assert bad.returncode != 0
  assert bad.stderr.strip().splitlines() == [
      f"error: RUN_DIR {tmp_path / 'nothing'} is not a directory"]
