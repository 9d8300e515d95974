"""The engine's logging interface, a recording fake, and W&B offline."""
import json
import os
import time

import numpy as np
import pytest

from ntm_jax import NTMConfig, experiment, train
from ntm_jax.wandb_logger import WandbLogger, default_mode

CONFIG = experiment.ExperimentConfig(
    task="copy", task_options=(("bits", 3),),
    model=NTMConfig(input_size=4, output_size=3, controller_size=16, memory_rows=8,
                    memory_width=4),
    train=train.TrainConfig(seeds=2, steps=100, batch_size=2, max_length=3, eval_every=50,
                            test_lengths=(2, 4), test_memory_size=8),
    checkpoint_every=50)


class Recorder:
  def __init__(self):
    self.calls = []

  def start(self, config, out_dir):
    self.calls.append(("start", config, out_dir))

  def log_chunk(self, step, aggregate, per_seed):
    self.calls.append(("log_chunk", step, aggregate, per_seed))

  def finish(self, summary):
    self.calls.append(("finish", summary))


class FailsMidRun(Recorder):
  def log_chunk(self, step, aggregate, per_seed):
    raise ConnectionError("W&B backend went away")


def test_the_engine_logs_config_aggregates_per_seed_values_and_summary(tmp_path):
  recorder = Recorder()
  summary = experiment.run(CONFIG, str(tmp_path), progress=False, log=lambda _: None,
                           loggers=[recorder])
  kinds = [c[0] for c in recorder.calls]
  assert kinds == ["start", "log_chunk", "log_chunk", "finish"]
  assert recorder.calls[0][1] == CONFIG.to_json()
  rows = {}
  with open(tmp_path / "metrics.jsonl") as f:
    for line in f:
      row = json.loads(line)
      rows[row["step"]] = row
  for _, step, aggregate, per_seed in recorder.calls[1:3]:
    row = rows[step]
    assert per_seed["eval_bit_errors"] == row["eval_bit_errors"]
    assert per_seed["loss"] == row["loss"]
    for name in ("loss", "eval_loss", "eval_bit_errors"):
      values = np.array(row[name], float)
      assert aggregate[f"{name}/median"] == pytest.approx(np.median(values))
      assert aggregate[f"{name}/min"] == pytest.approx(values.min())
      assert aggregate[f"{name}/max"] == pytest.approx(values.max())
    assert aggregate["converged"] == row["converged"]
    assert aggregate["diverged"] == row["diverged"]
  assert [c[1] for c in recorder.calls[1:3]] == [50, 100]
  logged_summary = recorder.calls[3][1]
  assert logged_summary is summary
  metrics = experiment.sweep_metrics(summary)
  with open(tmp_path / "summary.json") as f:
    on_disk = json.load(f)["aggregate"]
  assert metrics["converged_fraction"] == on_disk["converged"] / on_disk["seeds"]


def test_a_logger_failing_mid_run_neither_stops_training_nor_loses_results(tmp_path):
  messages = []
  failing, healthy = FailsMidRun(), Recorder()
  experiment.run(CONFIG, str(tmp_path), progress=False, log=messages.append,
                 loggers=[failing, healthy])
  assert any("FailsMidRun.log_chunk failed" in m for m in messages)
  assert [c[0] for c in healthy.calls] == ["start", "log_chunk", "log_chunk", "finish"]
  assert os.path.exists(tmp_path / "summary.json")
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["100", "50"]
  with open(tmp_path / "metrics.jsonl") as f:
    assert sum(1 for _ in f) == 100


def test_default_mode_follows_wandb_mode(monkeypatch):
  monkeypatch.delenv("WANDB_MODE", raising=False)
  assert default_mode() == "off"
  monkeypatch.setenv("WANDB_MODE", "offline")
  assert default_mode() == "offline"
  monkeypatch.setenv("WANDB_MODE", "disabled")
  assert default_mode() == "off"


def test_offline_wandb_writes_a_run_directory_without_blocking(tmp_path, monkeypatch):
  monkeypatch.setenv("WANDB_SILENT", "true")
  monkeypatch.delenv("WANDB_API_KEY", raising=False)
  messages = []
  summary = {"aggregate": {"seeds": 2, "converged": 1, "diverged": 0,
                           "steps_to_converge": {"q1": 50.0, "median": 50.0, "q3": 50.0},
                           "median_bit_errors_by_length": {"2": 0.0, "4": 1.5}},
             "seeds": [{"seed": 0, "converged_step": 50, "diverged": False,
                        "bit_errors_by_length": {"2": 0.0, "4": 1.0}},
                       {"seed": 1, "converged_step": None, "diverged": False,
                        "bit_errors_by_length": {"2": 0.5, "4": 2.0}}]}
  began = time.monotonic()
  logger = WandbLogger("offline", project="ntm_jax_test", log=messages.append)
  logger.start(CONFIG.to_json(), str(tmp_path))
  logger.log_chunk(50, {"loss/median": 1.0, "converged": 1}, {"loss": [1.0, None]})
  logger.finish(summary)
  assert time.monotonic() - began < 90
  assert any("wandb sync" in m for m in messages)
  assert glob_one(tmp_path / "wandb", "offline-run-*")


def glob_one(folder, pattern):
  import glob
  return glob.glob(os.path.join(folder, pattern))
