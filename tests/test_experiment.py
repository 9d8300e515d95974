"""End to end through ntm_jax.runs.engine.run and the experiments.copy CLI.

Every run here uses conftest's TINY_EXPERIMENT (2 seeds, 200 steps), so each
costs a few seconds, nearly all of it compiling the training chunk. The
uninterrupted run the others are compared with is conftest's shared
`tiny_run`; tests that train runs of their own are marked slow.
"""
import dataclasses
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax.config import ExperimentConfig
import ntm_jax.runs.engine as experiment
import ntm_jax.training as train

from conftest import TINY_EXPERIMENT as CONFIG
from conftest import run_python

STEPS, EVAL_EVERY = CONFIG.train.steps, CONFIG.train.eval_every
PER_SEED = ("loss", "bit_errors", "grad_norm")
EVALS = ("eval_loss", "eval_bit_errors")


def _run(config, out_dir, **kwargs):
  return experiment.run(config, str(out_dir), progress=False, log=lambda _: None, **kwargs)


def _padded_seeds(config):
  """Seeds run() actually trains: config.train.seeds rounded up to whole
  groups on every device."""
  devices = len(jax.local_devices())
  group = train.default_group_target(jax.default_backend(), config.model)
  return -(-config.train.seeds // (devices * (group or 1))) * devices * (group or 1)


def _metric_lines(out_dir):
  with open(os.path.join(out_dir, "metrics.jsonl")) as f:
    return f.read().splitlines()


def _metrics(out_dir):
  return [json.loads(line) for line in _metric_lines(out_dir)]


def _summary(out_dir):
  with open(os.path.join(out_dir, "summary.json")) as f:
    return json.load(f)


def _without_timing(summary):
  return {k: v for k, v in summary.items() if k not in ("timing", "plots")}


def _checkpoint_steps(out_dir):
  return sorted(int(name) for name in os.listdir(os.path.join(out_dir, "checkpoints"))
                if name.isdigit())


def _restore(out_dir, config=CONFIG):
  """(step, stacked TrainState as numpy) of the latest checkpoint, via orbax.

  On disk a checkpoint is a dict of the TrainState's fields that are not
  None (the optional ones are None when their setting is off)."""
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(os.path.join(os.path.abspath(out_dir), "checkpoints"))
  step = manager.latest_step()
  states = train.init_states(config.model, config.train, _padded_seeds(config))
  fields = {field.name: getattr(states, field.name) for field in dataclasses.fields(states)
            if getattr(states, field.name) is not None}
  target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, fields)
  restored = states.replace(**manager.restore(step, args=ocp.args.StandardRestore(target)))
  manager.close()
  return step, jax.tree_util.tree_map(np.asarray, restored)


def _assert_trees_equal(a, b):
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)


@pytest.fixture
def run_a(tiny_run):
  """The shared uninterrupted run of CONFIG (with its plots); read-only."""
  return pathlib.Path(tiny_run.out_dir), tiny_run.summary


# The run directory -----------------------------------------------------------


def test_config_json_round_trips(run_a):
  out_dir, _ = run_a
  with open(out_dir / "config.json") as f:
    data = json.load(f)
  assert ExperimentConfig.from_json(data) == CONFIG
  assert data["task_options"] == {"bits": 3} and data["model_kind"] == "ntm"


def test_metrics_jsonl_has_one_line_per_step_and_lists_over_seeds(run_a):
  out_dir, _ = run_a
  rows = _metrics(out_dir)
  assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
  for r in rows:
    for name in PER_SEED:
      assert isinstance(r[name], list) and len(r[name]) == 2, (r["step"], name)
      assert all(isinstance(v, float) for v in r[name]), (r["step"], name)
    assert r["train_length"] == CONFIG.train.max_length
  eval_rows = [r for r in rows if "eval_bit_errors" in r]
  assert [r["step"] for r in eval_rows] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
  for r in eval_rows:
    for name in EVALS:
      assert len(r[name]) == 2
    assert r["converged"] in (0, 1, 2) and r["diverged"] == 0


def test_checkpoints_keep_the_latest_two(run_a):
  out_dir, _ = run_a
  assert _checkpoint_steps(out_dir) == [150, 200]
  step, states = _restore(out_dir)
  assert step == STEPS
  assert states.step.tolist() == [STEPS] * _padded_seeds(CONFIG)


def test_summary_json_per_seed_entries_and_aggregate(run_a):
  out_dir, returned = run_a
  summary = _summary(out_dir)
  assert summary == json.loads(json.dumps(returned))
  assert summary["task"] == "copy" and summary["model"] == "ntm"
  seeds, agg = summary["seeds"], summary["aggregate"]
  assert [s["seed"] for s in seeds] == [0, 1]
  for s in seeds:
    assert {"seed", "converged_step", "diverged", "bit_errors_by_length"} <= set(s)
    assert set(s["bit_errors_by_length"]) == {"2", "6"}
    assert set(s["bits_by_length"]) == {"2", "6"}
    assert s["diverged"] is False and s["diverged_step"] is None
    assert s["converged_step"] is None or 0 < s["converged_step"] <= STEPS
  # The aggregate agrees with the per-seed entries.
  steps = [s["converged_step"] for s in seeds if s["converged_step"] is not None]
  assert agg["seeds"] == 2
  assert agg["converged"] == len(steps)
  assert agg["diverged"] == sum(s["diverged"] for s in seeds) == 0
  assert agg["collapsed"] == sum(s["collapses"] > 0 for s in seeds)
  assert set(agg["steps_to_converge"]) == {"q1", "median", "q3"}
  if steps:
    q1, median, q3 = np.percentile(steps, [25, 50, 75])
    assert agg["steps_to_converge"] == {"q1": q1, "median": median, "q3": q3}
  else:
    assert agg["steps_to_converge"] == {"q1": None, "median": None, "q3": None}
  assert set(agg["median_bit_errors_by_length"]) == {"2", "6"}
  for n in ("2", "6"):
    values = [s["bit_errors_by_length"][n] for s in seeds]
    assert agg["median_bit_errors_by_length"][n] == pytest.approx(np.median(values), abs=1e-4)
    assert agg["seeds_under_1_bit_error_by_length"][n] == sum(v < 1.0 for v in values)
  assert agg["test_memory_size"] == 16
  # The last evaluation in metrics.jsonl is what the summary calls final.
  last = _metrics(out_dir)[-1]
  assert last["eval_bit_errors"] == [s["final_eval"] for s in seeds]
  assert last["converged"] == agg["converged"]


def test_a_directory_holding_checkpoints_refuses_a_fresh_run(run_a):
  out_dir, _ = run_a
  before = (_metric_lines(out_dir), (out_dir / "config.json").read_text())
  with pytest.raises(ValueError, match="already holds a run"):
    _run(CONFIG, out_dir)
  assert (_metric_lines(out_dir), (out_dir / "config.json").read_text()) == before


# Resume ----------------------------------------------------------------------


def _interrupt_on_call(monkeypatch, n):
  """Patch the engine, as the runner sees it, to raise KeyboardInterrupt on
  the n-th call of a compiled chunk."""
  real = train.make_seed_parallel

  def interrupting(fn, mesh=None, **kwargs):
    compiled, calls = real(fn, mesh, **kwargs), []

    def call(*args):
      calls.append(None)
      if len(calls) == n:
        raise KeyboardInterrupt
      return compiled(*args)
    return call

  monkeypatch.setattr(train, "make_seed_parallel", interrupting)


# checkpoint_every=50 has the step-100 checkpoint on disk already; with 200
# only the runner's on-the-way-out save (its `finally`) keeps step 100.
@pytest.mark.slow
@pytest.mark.parametrize("checkpoint_every", [50, 200])
def test_resume_after_an_interruption_matches_an_uninterrupted_run(
    run_a, tmp_path, monkeypatch, checkpoint_every):
  a_dir, a_summary = run_a
  config = dataclasses.replace(CONFIG, checkpoint_every=checkpoint_every)
  b_dir = tmp_path / "b"

  _interrupt_on_call(monkeypatch, 3)  # during the third chunk: after 100 steps
  with pytest.raises(KeyboardInterrupt):
    _run(config, b_dir)
  monkeypatch.undo()
  assert not os.path.exists(b_dir / "summary.json")
  assert [r["step"] for r in _metrics(b_dir)] == list(range(1, 101))
  assert _checkpoint_steps(b_dir)[-1] == 100
  # A hard kill could also leave rows past the checkpoint and a cut last
  # line: resuming must drop them (metrics restart from the checkpoint).
  with open(b_dir / "metrics.jsonl", "a") as f:
    f.write("\n".join(_metric_lines(a_dir)[100:130]) + "\n" + '{"step": 131, "lo')

  # resume=True reads config.json from the directory: the config passed is ignored.
  b_summary = _run(dataclasses.replace(config, checkpoint_every=10**6), b_dir, resume=True)
  assert _metric_lines(b_dir) == _metric_lines(a_dir)
  assert _without_timing(b_summary) == _without_timing(a_summary)
  assert _without_timing(_summary(b_dir)) == _without_timing(_summary(a_dir))
  assert b_summary["timing"]["steps_run"] == 100
  step_a, states_a = _restore(a_dir)
  step_b, states_b = _restore(b_dir)
  assert step_a == step_b == STEPS
  _assert_trees_equal(states_b.params, states_a.params)
  _assert_trees_equal(states_b, states_a)  # best_params, opt_state, rng, bookkeeping

  # Resuming a finished run trains nothing and reports the same results.
  again = _run(config, b_dir, resume=True)
  assert again["timing"]["steps_run"] == 0
  assert _without_timing(again) == _without_timing(a_summary)
  assert _metric_lines(b_dir) == _metric_lines(a_dir)


@pytest.mark.slow
def test_resume_with_more_steps_extends_a_finished_run_to_match_one_longer_run(
    run_a, tmp_path):
  a_dir, a_summary = run_a
  b_dir = tmp_path / "b"
  half = dataclasses.replace(CONFIG, train=dataclasses.replace(CONFIG.train, steps=STEPS // 2))
  _run(half, b_dir)
  extended = _run(half, b_dir, resume=True, resume_steps=STEPS)
  assert extended["timing"]["steps_run"] == STEPS // 2
  # Constant learning rate: the same metrics, results and states as one run.
  assert _metric_lines(b_dir) == _metric_lines(a_dir)
  assert _without_timing(extended) == _without_timing(a_summary)
  _assert_trees_equal(_restore(b_dir)[1], _restore(a_dir)[1])
  with open(b_dir / "config.json") as f:
    assert json.load(f)["train"]["steps"] == STEPS
  with pytest.raises(ValueError, match="below the step of the checkpoint"):
    _run(half, b_dir, resume=True, resume_steps=STEPS // 2)
  with open(b_dir / "config.json") as f:
    assert json.load(f)["train"]["steps"] == STEPS  # untouched by the refusal


# Divergence ------------------------------------------------------------------


@pytest.mark.slow
def test_a_diverged_seed_is_reported_and_the_other_seed_is_untouched(run_a, tmp_path):
  a_dir, _ = run_a
  states = train.init_states(CONFIG.model, CONFIG.train, _padded_seeds(CONFIG))
  states = states.replace(learning_rate=states.learning_rate.at[1].set(jnp.inf))
  summary = _run(CONFIG, tmp_path, initial_states=states)

  seeds = summary["seeds"]
  assert [s["diverged"] for s in seeds] == [False, True]
  assert seeds[0]["diverged_step"] is None
  assert seeds[1]["diverged_step"] == 0
  assert summary["aggregate"]["diverged"] == 1
  assert _summary(tmp_path)["seeds"] == json.loads(json.dumps(seeds))

  clean, poisoned = _metrics(a_dir), _metrics(tmp_path)
  assert len(clean) == len(poisoned) == STEPS
  for c, p in zip(clean, poisoned):
    assert p["step"] == c["step"] and p["train_length"] == c["train_length"]
    for name in PER_SEED + EVALS:
      if name in c:
        assert p[name][0] == c[name][0], (c["step"], name)
    if "diverged" in p:
      assert p["diverged"] == 1
  # Seed 0's test results are those of the clean run too.
  a_seed0 = _summary(a_dir)["seeds"][0]
  assert seeds[0] == a_seed0
  # Seed 1 never moved from its initial parameters, and they are finite.
  _, restored = _restore(tmp_path)
  for got, init in zip(jax.tree_util.tree_leaves(restored.params),
                       jax.tree_util.tree_leaves(jax.device_get(states.params))):
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[1], init[1])


# Bad input stops before anything compiles ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("flag,word", [
    ("--seeds=0", "seeds"),
    ("--shift_range=2", "shift_range"),
    ("--max_length=200", "memory rows"),   # longer than the 128 memory rows
    ("--controller=foo", "controller"),
])
def test_bad_flags_exit_with_one_line_before_training(flag, word, tmp_path):
  out_dir = tmp_path / "run"
  result = run_python("-m", "experiments.copy", flag, f"--out_dir={out_dir}", "--wandb=off",
                      "--noprogress")
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr[-2000:]
  assert lines[0].startswith("error: ") and word in lines[0], lines[0]
  assert result.stdout == ""
  assert not os.path.exists(out_dir)  # nothing written: training never started


# Beyond the engine: the run's plots, experiments.inspect and pretrained export
# (carried over from the previous version of this file) -----------------------


def test_a_finished_run_has_its_plots(run_a):
  out_dir, summary = run_a
  assert len(summary["plots"]) == 5
  for path in summary["plots"]:
    assert os.path.getsize(out_dir / path) > 1000


def test_settings_that_cannot_work_fail_before_any_training(tmp_path):
  small_test_memory = dataclasses.replace(
      CONFIG, train=dataclasses.replace(CONFIG.train, test_lengths=(1, 2), test_memory_size=2))
  with pytest.raises(ValueError, match="smaller than shift_range"):
    experiment.validate(small_test_memory)
  with pytest.raises(ValueError, match="bad options for task 'copy'"):
    experiment.validate(dataclasses.replace(CONFIG, task_options=(("bitz", 3),)))
  with pytest.raises(ValueError, match="no run to resume"):
    experiment.run(CONFIG, str(tmp_path / "missing"), resume=True, progress=False)
  with pytest.raises(ValueError, match="devices must be in"):
    experiment.run(CONFIG, str(tmp_path / "run"), devices=99, progress=False)
  assert not os.path.exists(tmp_path / "run")
