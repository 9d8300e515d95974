"""End to end through ntm_jax.experiment.run and the experiments.copy CLI."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax import NTMConfig, experiment, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = experiment.ExperimentConfig(
    task="copy", task_options=(("bits", 3),),
    model=NTMConfig(input_size=4, output_size=3, controller_size=16, memory_rows=8,
                    memory_width=4),
    train=train.TrainConfig(seeds=2, steps=100, batch_size=2, max_length=3, eval_every=25,
                            test_lengths=(2, 6), test_memory_size=16, learning_rate=1e-2),
    checkpoint_every=50)


def _run(out_dir, plots=False, **kwargs):
  return experiment.run(CONFIG, str(out_dir), progress=False, log=lambda _: None,
                        plots=plots, **kwargs)


def _metrics(out_dir):
  with open(os.path.join(out_dir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _without_timing(summary):
  return {k: v for k, v in summary.items() if k not in ("timing", "plots")}


def _final_params(out_dir):
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(os.path.join(os.path.abspath(out_dir), "checkpoints"))
  return jax.device_get(manager.restore(manager.latest_step())["params"])


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  out_dir = tmp_path_factory.mktemp("straight")
  return out_dir, _run(out_dir, plots=True)


def test_run_writes_config_metrics_checkpoints_and_summary(straight_run):
  out_dir, summary = straight_run
  with open(out_dir / "config.json") as f:
    assert experiment.ExperimentConfig.from_json(json.load(f)) == CONFIG
  rows = _metrics(out_dir)
  assert [r["step"] for r in rows] == list(range(1, 101))
  assert all(len(r["loss"]) == 2 and len(r["bit_errors"]) == 2 for r in rows)
  assert [r["step"] for r in rows if "eval_bit_errors" in r] == [25, 50, 75, 100]
  assert sorted(os.listdir(out_dir / "checkpoints")) == ["100", "50"]
  with open(out_dir / "summary.json") as f:
    on_disk = json.load(f)
  assert on_disk == json.loads(json.dumps(summary))
  seeds, aggregate = on_disk["seeds"], on_disk["aggregate"]
  assert [s["seed"] for s in seeds] == [0, 1]
  for s in seeds:
    assert set(s["bit_errors_by_length"]) == {"2", "6"}
    assert s["diverged"] is False
  converged = [s["converged_step"] for s in seeds if s["converged_step"] is not None]
  assert aggregate["converged"] == len(converged)
  assert aggregate["diverged"] == 0
  assert set(aggregate["steps_to_converge"]) == {"q1", "median", "q3"}
  for length in ("2", "6"):
    values = [s["bit_errors_by_length"][length] for s in seeds]
    assert aggregate["median_bit_errors_by_length"][length] == pytest.approx(np.median(values), abs=1e-4)
  # The last evaluation in metrics.jsonl is what the summary calls final.
  assert rows[-1]["eval_bit_errors"] == [s["final_eval_bit_errors"] for s in seeds]


def test_a_run_directory_holding_a_run_refuses_a_fresh_run(straight_run):
  out_dir, _ = straight_run
  with pytest.raises(ValueError, match="already holds a run"):
    _run(out_dir)


def test_resume_after_an_interruption_ends_as_an_uninterrupted_run(straight_run, tmp_path,
                                                                   monkeypatch):
  out_dir, summary = straight_run
  real = experiment.train_lib.make_seed_parallel

  def interrupting(fn, mesh=None):
    compiled, calls = real(fn, mesh), []

    def call(*args):
      calls.append(1)
      if len(calls) == 3:  # mid-run: after 50 steps, during the third chunk
        raise KeyboardInterrupt
      return compiled(*args)
    return call

  monkeypatch.setattr(experiment.train_lib, "make_seed_parallel", interrupting)
  with pytest.raises(KeyboardInterrupt):
    _run(tmp_path)
  monkeypatch.undo()
  assert not os.path.exists(tmp_path / "summary.json")
  assert _metrics(tmp_path)[-1]["step"] == 50
  resumed = _run(tmp_path, resume=True)
  assert _metrics(tmp_path) == _metrics(out_dir)
  assert _without_timing(resumed) == _without_timing(summary)
  for a, b in zip(jax.tree_util.tree_leaves(_final_params(tmp_path)),
                  jax.tree_util.tree_leaves(_final_params(out_dir))):
    np.testing.assert_array_equal(a, b)


def test_a_diverged_seed_is_reported_and_the_other_is_untouched(straight_run, tmp_path):
  out_dir, _ = straight_run
  states = train.init_states(CONFIG.model, CONFIG.train, 2)
  states = states.replace(learning_rate=states.learning_rate.at[1].set(jnp.inf))
  summary = _run(tmp_path, initial_states=states)
  assert [s["diverged"] for s in summary["seeds"]] == [True, False][::-1]
  assert summary["aggregate"]["diverged"] == 1
  assert summary["seeds"][1]["converged_step"] is None
  clean, poisoned = _metrics(out_dir), _metrics(tmp_path)
  assert [r["loss"][0] for r in poisoned] == [r["loss"][0] for r in clean]
  assert [r.get("eval_bit_errors", [None])[0] for r in poisoned] == \
         [r.get("eval_bit_errors", [None])[0] for r in clean]


@pytest.mark.parametrize("flag,word", [
    ("--seeds=0", "seeds"), ("--shift_range=2", "shift_range"),
    ("--max_length=200", "memory rows"), ("--controller=foo", "controller")])
def test_bad_flags_stop_with_one_line_before_any_compile(flag, word, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "experiments.copy", flag, f"--out_dir={tmp_path}/run"],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
      env=dict(os.environ, PYTHONPATH=ROOT))
  assert result.returncode != 0
  lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
  assert word in lines[-1], result.stderr[-2000:]
  assert not os.path.exists(tmp_path / "run" / "metrics.jsonl")


def test_a_finished_run_has_its_plots(straight_run):
  out_dir, summary = straight_run
  assert len(summary["plots"]) == 5
  for path in summary["plots"]:
    assert os.path.getsize(out_dir / path) > 1000


def test_inspect_redraws_any_seed_length_and_a_larger_memory(straight_run):
  out_dir, _ = straight_run
  result = subprocess.run(
      [sys.executable, "-m", "experiments.inspect", str(out_dir), "--seed=1", "--length=10",
       "--memory_size=32"], cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=ROOT))
  assert result.returncode == 0, result.stderr[-2000:]
  assert "seed index 1:" in result.stdout and "at length 10" in result.stdout
  assert os.path.exists(out_dir / "plots" / "heads_seed1_L10.png")
  assert os.path.exists(out_dir / "plots" / "memory_seed1_L10.png")


def test_export_and_load_round_trip_a_seed(straight_run, tmp_path):
  from ntm_jax import apply, checkpoints, pretrained
  out_dir, _ = straight_run
  pretrained.export(str(out_dir), task="tiny", seed=0, folder=str(tmp_path))
  model_config, params = pretrained.load("tiny", folder=str(tmp_path))
  assert model_config == CONFIG.model
  original = checkpoints.seed_params(checkpoints.load_states(str(out_dir)), 0)
  for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(original)):
    np.testing.assert_array_equal(a, b)
  inputs = jnp.ones((1, 5, 4))
  np.testing.assert_array_equal(apply(params, inputs, model_config)[0],
                                apply(original, inputs, model_config)[0])
  with pytest.raises(ValueError, match="available: tiny"):
    pretrained.load("nope", folder=str(tmp_path))
