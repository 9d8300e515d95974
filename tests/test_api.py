"""The front door, `ntm_jax.train_seeds`: from Python, and from the command
line (`experiments/common.py` `main_for` turns flags into configs and comes
in through it, building the task once and validating once)."""
import json
import os
import shutil
import sys

import optax
import pytest
from absl import flags
from absl.testing import flagsaver

from ntm_jax import LSTMConfig, TrainConfig, api
import ntm_jax.runs.validation as validation
import ntm_jax.tasks as tasks_lib
from ntm_jax.tasks import CopyTask

from conftest import load_experiment

# The smallest model compiles fastest: a one-layer LSTM of 8 units on 3-bit
# copy; 2 seeds, two chunks of 2 steps.
TASK = CopyTask(bits=3)
MODEL = LSTMConfig(input_size=4, output_size=3, size=8, layers=1)
TRAIN = TrainConfig(seeds=2, steps=4, batch_size=2, max_length=3, eval_every=2, eval_batch=4,
                    test_lengths=(2, 4), test_batch=4)
QUIET = {"plots": False, "progress": False, "log": lambda _: None}


def _rows(out_dir):
  with open(os.path.join(out_dir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _config_json(out_dir):
  with open(os.path.join(out_dir, "config.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
  """(out_dir, summary) of TASK / MODEL / TRAIN trained from Python with the
  config's own optimizer. Read it; copy it before writing."""
  out_dir = str(tmp_path_factory.mktemp("api") / "run")
  return out_dir, api.train_seeds(TASK, MODEL, TRAIN, out_dir, checkpoint_every=2, **QUIET)


def test_a_tiny_run_from_python_writes_a_whole_run_directory(default_run):
  out_dir, summary = default_run
  assert [s["seed"] for s in summary["seeds"]] == [0, 1]
  assert summary["task"] == "copy" and summary["model"] == "lstm"
  assert summary["timing"]["steps_run"] == 4
  rows = _rows(out_dir)
  assert [row["step"] for row in rows] == [1, 2, 3, 4]
  assert all(len(row["loss"]) == 2 for row in rows)
  config = _config_json(out_dir)
  # The task object is recorded by its registered name and its options.
  assert (config["task"], config["task_options"]) == ("copy", {"bits": 3})
  assert config["checkpoint_every"] == 2 and config["plots"] is False
  assert sorted(os.listdir(os.path.join(out_dir, "checkpoints"))) == ["2", "4"]
  with open(os.path.join(out_dir, "summary.json")) as f:
    assert json.load(f)["seeds"] == summary["seeds"]


def test_without_an_out_dir_the_run_goes_to_runs_task_timestamp(
    default_run, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  api.train_seeds(TASK, MODEL, TRAIN, checkpoint_every=2, **QUIET)
  (stamp,) = os.listdir(tmp_path / "runs" / "copy")
  assert len(stamp) == len("20250101-120000") and stamp[8] == "-"
  out_dir = tmp_path / "runs" / "copy" / stamp
  assert (out_dir / "summary.json").exists()
  # The same config trains the same numbers wherever it is written.
  assert _rows(out_dir) == _rows(default_run[0])


def test_a_custom_optax_optimizer_is_the_one_applied(default_run, tmp_path):
  out_dir = str(tmp_path / "sgd")
  api.train_seeds(TASK, MODEL, TRAIN, out_dir, optimizer=optax.sgd(0.5), **QUIET)
  ours, default = _rows(out_dir), _rows(default_run[0])
  # Step 1's loss comes before any update: the same initial parameters and
  # data. Every later step follows other updates than Adam's.
  assert ours[0]["loss"] == default[0]["loss"]
  for mine, theirs in zip(ours[1:], default[1:]):
    assert mine["loss"] != theirs["loss"], mine["step"]


def test_resume_steps_extends_a_finished_run(default_run, tmp_path):
  out_dir = str(tmp_path / "run")
  shutil.copytree(default_run[0], out_dir)
  messages = []
  summary = api.train_seeds(TASK, MODEL, TRAIN, out_dir, resume=True, resume_steps=6,
                            plots=False, progress=False, log=messages.append)
  assert "resumed from step 4" in messages
  assert summary["timing"]["steps_run"] == 2
  assert [row["step"] for row in _rows(out_dir)] == list(range(1, 7))
  assert _rows(out_dir)[:4] == _rows(default_run[0])
  assert _config_json(out_dir)["train"]["steps"] == 6


# The command line ---------------------------------------------------------------


def test_one_command_line_run_builds_its_task_once_and_validates_once(tmp_path, monkeypatch):
  load_experiment("copy")
  from experiments import common
  built, validated = [], []

  class CountedCopyTask(CopyTask):
    def __init__(self, *args, **kwargs):
      built.append(kwargs)
      super().__init__(*args, **kwargs)

  real_validate = validation.validate

  def counted_validate(*args, **kwargs):
    validated.append(args)
    return real_validate(*args, **kwargs)

  monkeypatch.setitem(tasks_lib.TASKS, "copy", CountedCopyTask)
  monkeypatch.setattr(validation, "validate", counted_validate)
  out_dir = tmp_path / "run"
  argv = ["copy", "--model=lstm", "--lstm_size=8", "--lstm_layers=1", "--seeds=2",
          "--steps=2", "--eval_every=2", "--batch_size=1", "--max_length=2",
          "--test_lengths=2", "--test_batch=2", "--eval_batch=2", "--noplots",
          "--noprogress", "--wandb=off", f"--out_dir={out_dir}"]
  monkeypatch.setattr(sys, "argv", argv)
  was_parsed = flags.FLAGS.is_parsed()
  with flagsaver.flagsaver():
    with pytest.raises(SystemExit) as done:
      common.main_for("copy")  # absl's app.run: parses sys.argv, exits when done
  if not was_parsed:
    flags.FLAGS.unparse_flags()
  assert done.value.code is None
  assert len(built) == 1 and len(validated) == 1
  assert (out_dir / "summary.json").exists()
  config = _config_json(out_dir)
  assert (config["task"], config["task_options"], config["model_kind"]) == ("copy", {}, "lstm")
