"""Sweep YAMLs resolve to real flags; the local runner ranks trials."""
import glob
import json
import os
import sys

import pytest
from absl import flags
from absl.testing import flagsaver

from sweeps import run as sweep_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
YAMLS = sorted(glob.glob(os.path.join(ROOT, "sweeps", "*.yaml")))


def _experiment_module(sweep):
  command = sweep["command"]
  return command[command.index("-m") + 1]


def test_there_is_a_sweep_per_experiment():
  names = {os.path.basename(p)[:-5] for p in YAMLS}
  assert "copy" in names


@pytest.mark.parametrize("path", YAMLS, ids=os.path.basename)
def test_sweep_parameters_are_flags_the_experiment_parses(path):
  sweep = sweep_run.load(path)
  assert sweep["metric"]["name"] in {"converged_fraction", "median_steps_to_converge"}
  module = _experiment_module(sweep)
  __import__(module)  # defines the experiment's flags on absl's FLAGS
  for name in sweep["parameters"]:
    assert name in flags.FLAGS, f"{path}: {name} is not a flag of {module}"
  for parameters in sweep_run.trials(sweep, 3, seed=1):
    cmd = sweep_run.command(sweep, parameters)
    assert cmd[:3] == [sys.executable, "-m", module]
    with flagsaver.flagsaver():
      flags.FLAGS.unparse_flags()
      flags.FLAGS([module] + cmd[3:])
      for name, value in parameters.items():
        assert flags.FLAGS[name].value == value, name


def test_grid_method_enumerates_the_product():
  sweep = {"method": "grid", "parameters": {"a": {"values": [1, 2]}, "b": {"values": ["x", "y"]},
                                             "c": {"value": 0}}}
  assert sweep_run.trials(sweep, 10) == [
      {"a": 1, "b": "x", "c": 0}, {"a": 1, "b": "y", "c": 0},
      {"a": 2, "b": "x", "c": 0}, {"a": 2, "b": "y", "c": 0}]


def test_random_draws_respect_the_ranges():
  sweep = {"method": "random", "parameters": {
      "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
      "n": {"distribution": "int_uniform", "min": 2, "max": 5}}}
  for trial in sweep_run.trials(sweep, 50):
    assert 1e-4 <= trial["lr"] <= 1e-2 and 2 <= trial["n"] <= 5


def test_local_runner_runs_and_ranks_a_two_trial_sweep(tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  tiny = ["steps=100", "eval_every=50", "checkpoint_every=50", "seeds=2", "batch_size=2",
          "controller_size=8", "memory_rows=8", "memory_width=4", "max_length=3",
          "test_lengths=2,4", "test_memory_size=8", "lstm_size=8", "lstm_layers=1",
          "plots=false"]
  argv = [os.path.join(ROOT, "sweeps", "copy.yaml"), "--trials", "2", "--out_dir",
          str(tmp_path)] + [x for item in tiny for x in ("--set", item)]
  results = sweep_run.main(argv)
  assert len(results) == 2
  values = [r["converged_fraction"] for r in results]
  assert all(v is not None for v in values), open(tmp_path / "trial_000.log").read()[-2000:]
  assert values == sorted(values, reverse=True)
  for r in results:
    with open(os.path.join(r["dir"], "summary.json")) as f:
      agg = json.load(f)["aggregate"]
    assert r["converged_fraction"] == agg["converged"] / agg["seeds"]
  ranking = json.loads((tmp_path / "ranking.json").read_text())
  assert [t["trial"] for t in ranking["trials"]] == [r["trial"] for r in results]
  ranked_rows = [l for l in (tmp_path / "ranking.md").read_text().splitlines()
                 if l.startswith("| ") and l[2].isdigit()]
  assert len(ranked_rows) == 2
