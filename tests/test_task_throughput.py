"""experiments.task_throughput and `experiments.benchmark --tasks`: the
experiments' default configs, the lengths a chunk draws, one tiny measured
row's arithmetic, and bad names refused before anything compiles."""
import dataclasses
import json

import numpy as np
import pytest

from conftest import TINY_EXPERIMENT, run_python
import experiments.task_throughput as task_throughput
from ntm_jax.config import TrainConfig


def test_every_shipped_task_and_model_can_be_named():
  from ntm_jax.config import MODEL_CONFIGS
  from ntm_jax.tasks import TASKS
  assert set(task_throughput.TASK_NAMES) == set(TASKS)
  assert set(task_throughput.MODEL_KINDS) == set(MODEL_CONFIGS) == {"ntm", "lstm"}


@pytest.mark.parametrize("tasks, models, named", [
    (["copy", "sort"], ["ntm"], "'sort'"), (["dyck"], ["ntm", "gru"], "'gru'"),
    (["dyck"], [], "--models")])
def test_a_bad_name_is_refused_in_one_line(tasks, models, named):
  with pytest.raises(ValueError) as error:
    task_throughput.check_names(tasks, models)
  assert named in str(error.value) and "\n" not in str(error.value)


def test_default_config_is_what_the_experiment_trains_by_default():
  # experiments/dyck.py: words of 1-40, batch 8, an LSTM controller; the
  # baseline is the paper's 3 x 256 LSTM.
  ntm = task_throughput.default_config("dyck", "ntm")
  assert (ntm.task, ntm.model_kind, ntm.model.controller) == ("dyck", "ntm", "lstm")
  assert (ntm.train.batch_size, ntm.train.min_length, ntm.train.max_length) == (8, 1, 40)
  lstm = task_throughput.default_config("dyck", "lstm")
  assert (lstm.model_kind, lstm.model.size, lstm.model.layers) == ("lstm", 256, 3)
  assert lstm.train.batch_size == 8
  # experiments/copy.py trains with 32 memory rows, batch 8; repeat copy's
  # task flags reach its task options.
  copy = task_throughput.default_config("copy", "ntm")
  assert (copy.model.memory_rows, copy.train.batch_size) == (32, 8)
  repeat = task_throughput.default_config("repeat_copy", "ntm")
  assert dict(repeat.task_options)["max_repeats"] == 10


def test_drawn_lengths_lie_in_the_training_range_and_are_shared_by_the_seeds():
  config = TrainConfig(min_length=2, max_length=5)
  lengths = task_throughput.drawn_lengths(config, 100, 200, np.zeros(3, bool))
  assert lengths.shape == (200, 3)
  assert set(np.unique(lengths)) == {2, 3, 4, 5}  # uniform: 200 draws hit all four
  assert (lengths == lengths[:, :1]).all()


def test_a_converged_seed_draws_no_shorter_with_max_length_while_converged():
  config = TrainConfig(min_length=1, max_length=4, max_length_while_converged=12)
  lengths = task_throughput.drawn_lengths(config, 0, 300, np.array([False, True]))
  assert lengths[:, 0].min() >= 1 and lengths[:, 0].max() <= 4
  assert (lengths[:, 1] >= lengths[:, 0]).all() and lengths[:, 1].max() <= 12
  assert lengths[:, 1].max() > 4


@pytest.fixture(scope="module")
def tiny_row():
  # The tiny copy NTM (3 bits), lengths 1-3: 2 seeds, one timed chunk of 2 steps.
  return task_throughput.measure(TINY_EXPERIMENT, seeds=2, steps=2, chunks=1)


def test_a_measured_row_s_arithmetic(tiny_row):
  r = tiny_row
  assert (r["task"], r["model"], r["seeds"], r["batch_per_seed"]) == ("copy", "ntm", 2, 2)
  assert r["padded_seeds"] >= 2 and r["params"] > 0 and r["compile_s"] > 0
  assert r["sequences_per_s"] == pytest.approx(r["steps_per_s"] * 2 * 2)
  assert r["sequences_per_s_per_seed"] == pytest.approx(r["sequences_per_s"] / 2)
  # A million sequences per seed at that rate, in hours.
  assert r["hours_per_1m_sequences_per_seed"] * 3600 * r["sequences_per_s_per_seed"] == (
      pytest.approx(1e6))
  # Copy of l vectors takes 2l + 1 steps: 7 padded (l = 3), 3 to 7 useful.
  assert r["padded_time_steps_per_s"] == pytest.approx(7 * r["sequences_per_s"])
  assert 3 * r["sequences_per_s"] <= r["useful_time_steps_per_s"] * (1 + 1e-9)
  assert r["useful_time_steps_per_s"] <= r["padded_time_steps_per_s"] * (1 + 1e-9)


def test_the_table_has_a_line_per_row_under_its_header(tiny_row):
  other = dict(tiny_row, model="lstm")
  lines = task_throughput.format_table([tiny_row, other]).splitlines()
  assert lines[0].split()[:2] == ["task", "model"] and "h/1M" in lines[0]
  assert [line.split()[:2] for line in lines[1:3]] == [["copy", "ntm"], ["copy", "lstm"]]
  assert not any("repeat_copy" in line for line in lines)
  repeat = task_throughput.format_table([dict(tiny_row, task="repeat_copy")])
  assert "max_repeats" in repeat.splitlines()[-1]


def test_a_config_that_cannot_run_is_refused_before_compiling():
  bad = dataclasses.replace(TINY_EXPERIMENT, train=dataclasses.replace(
      TINY_EXPERIMENT.train, max_length=50))  # 50 vectors, 8 memory rows
  with pytest.raises(ValueError, match="needs 50 memory rows"):
    task_throughput.prepare(bad, 2, 2, 1)


@pytest.mark.slow
def test_default_configs_reads_the_same_configs_in_a_subprocess():
  read = task_throughput.default_configs([("dyck", "ntm"), ("ngrams", "lstm")])
  assert read == [task_throughput.default_config("dyck", "ntm"),
                  task_throughput.default_config("ngrams", "lstm")]


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--tasks", "copy,sort"], ["--tasks", "dyck", "--models", "gru"],
                                  ["--models", "ntm"], ["--tasks", "dyck", "--devices", "1"]])
def test_the_benchmark_refuses_a_bad_command_in_one_line(args, tmp_path):
  out = tmp_path / "b.json"
  done = run_python("-m", "experiments.benchmark", *args, f"--json={out}")
  assert done.returncode == 1
  assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
  assert done.stdout == "" and not out.exists()


@pytest.mark.slow
def test_the_benchmark_measures_a_task_at_its_defaults(tmp_path):
  out = tmp_path / "b.json"
  done = run_python("-m", "experiments.benchmark", "--tasks=dyck", "--models=ntm",
                    "--seeds=1", "--steps_per_chunk=1", "--chunks=1", f"--json={out}")
  assert done.returncode == 0, done.stderr[-2000:]
  rows = json.loads(out.read_text())["tasks"]
  assert [(r["task"], r["model"], r["seeds"], r["batch_per_seed"]) for r in rows] == [
      ("dyck", "ntm", 1, 8)]
  assert "h/1M seq/seed" in done.stdout
