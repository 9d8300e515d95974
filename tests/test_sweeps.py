"""Sweep YAMLs resolve to flags their experiment parses; the local runner ranks trials."""
import copy
import glob
import importlib
import json
import os
import sys
import textwrap

import pytest
from absl import flags
from absl.testing import flagsaver

from ntm_jax.runs.summary import sweep_metrics
from experiments import common
from sweeps import run as sweep_run
from conftest import run_python

from conftest import load_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# sweeps/<experiment>.yaml: each experiment's broad sweep, shipped with the
# package; sweeps/studies/<experiment>_<study>.yaml (or a folder of them):
# one study's focused screens, kept in the repository only.
TASK_YAMLS = sorted(glob.glob(os.path.join(ROOT, "sweeps", "*.yaml")))
STUDY_YAMLS = sorted(glob.glob(os.path.join(ROOT, "sweeps", "studies", "**", "*.yaml"),
                               recursive=True))
YAMLS = TASK_YAMLS + STUDY_YAMLS
SAMPLE_SUMMARY = {"aggregate": {"seeds": 4, "converged": 3, "diverged": 1,
                                "steps_to_converge": {"q1": 1.0, "median": 2.0, "q3": 3.0},
                                "seeds_under_1_bit_error_by_length": {"10": 3, "20": 1},
                                "median_bits_by_length": {"10": 0.5, "20": 4.0}}}


def _module(sweep):
  command = sweep["command"]
  return command[command.index("-m") + 1]


def _flags_of(module):
  """A private copy of absl's FLAGS with `module`'s flags, as its process sees them."""
  load_experiment(module)  # defines the experiment's flags on absl's FLAGS
  values = copy.deepcopy(flags.FLAGS)
  values.unparse_flags()
  return values


def _parse(module, args):
  """Parses args the way absl.app.run does; returns the FlagValues."""
  values = _flags_of(module)
  leftover = values([module] + list(args))
  assert leftover == [module], f"not flags: {leftover[1:]}"  # main_for rejects these
  return values


def _experiments_with_a_main():
  names = []
  for path in sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py"))):
    # common.py defines main_for; train.py trains any --task (each task's own
    # experiment has the sweep).
    if os.path.basename(path) in ("common.py", "train.py"):
      continue
    with open(path) as f:
      if "common.main_for(" in f.read():
        names.append(os.path.splitext(os.path.basename(path))[0])
  return names


def test_every_experiment_has_a_sweep_and_every_sweep_an_experiment():
  sweeps = {os.path.splitext(os.path.basename(p))[0] for p in TASK_YAMLS}
  experiments = set(_experiments_with_a_main())
  assert "copy" in experiments and STUDY_YAMLS
  assert experiments == sweeps, f"sweeps/ holds one <experiment>.yaml each: {sweeps ^ experiments}"
  for path in YAMLS:
    module = _module(sweep_run.load(path))
    assert module.startswith("experiments.") and module.split(".")[1] in experiments, path


@pytest.mark.parametrize("path", YAMLS, ids=os.path.basename)
def test_the_sweep_is_a_standard_wandb_sweep(path):
  sweep = sweep_run.load(path)
  assert sweep["method"] in ("random", "bayes", "grid")
  # The metric is one the W&B logger puts in the run summary and the local
  # runner computes from summary.json: both use sweep_metrics.
  assert sweep["metric"]["name"] in sweep_metrics(SAMPLE_SUMMARY)
  assert sweep["metric"]["goal"] in ("maximize", "minimize")
  command = sweep["command"]
  assert command[:3] == ["${env}", "${interpreter}", "-m"] and command[4] == "${args}"
  assert "--wandb=online" in command  # agent runs log to W&B
  assert os.path.exists(os.path.join(ROOT, sweep["program"]))
  name = os.path.splitext(os.path.basename(path))[0]
  experiment = _module(sweep).split(".")[1]
  if path in STUDY_YAMLS:
    # A study folder carries the experiment's name for all its files.
    study = os.path.relpath(path, os.path.join(ROOT, "sweeps", "studies")).split(os.sep)[0]
    assert study.startswith(experiment + "_"), study
    return
  assert name == experiment, name
  for required in ("lr", "clip_norm", "optimizer", "controller", "controller_size",
                   "memory_width", "curriculum_steps", "batch_size", "seeds", "steps"):
    assert required in sweep["parameters"], required


def _candidates(spec):
  if "value" in spec:
    return [spec["value"]]
  if "values" in spec:
    return spec["values"]
  return [spec["min"], spec["max"]]


@pytest.mark.parametrize("path", YAMLS, ids=os.path.basename)
def test_every_parameter_value_is_a_flag_value_the_experiment_parses(path):
  sweep = sweep_run.load(path)
  module = _module(sweep)
  load_experiment(module)
  for name, spec in sweep["parameters"].items():
    assert name in flags.FLAGS, f"{path}: {name} is not a flag of {module}"
    for value in _candidates(spec):
      parsed = _parse(module, [f"--{name}={value}"])
      assert parsed[name].value == pytest.approx(value), (name, value)


@pytest.mark.parametrize("path", YAMLS, ids=os.path.basename)
def test_trial_commands_resolve_to_the_module_and_parse_like_absl(path):
  sweep = sweep_run.load(path)
  module = _module(sweep)
  for parameters in sweep_run.trials(sweep, 5, seed=1):
    cmd = sweep_run.command(sweep, parameters)
    args = [f"--{n}={v}" for n, v in parameters.items()]
    assert cmd[:3 + len(args)] == [sys.executable, "-m", module] + args
    parsed = _parse(module, cmd[3:])
    for name, value in parameters.items():
      assert parsed[name].value == value, name
    assert parsed.wandb == "online" and parsed.progress is False


def test_args_are_formatted_exactly_as_the_wandb_agent_formats_them():
  utils = pytest.importorskip("wandb.sdk.launch.sweeps.utils")
  parameters = {"lr": 0.000123, "plots": False, "batch_size": 4, "optimizer": "adam"}
  agent = utils.create_sweep_command_args({"args": {k: {"value": v}
                                                    for k, v in parameters.items()}})
  ours = sweep_run._args(parameters)
  for form in ("args", "args_no_hyphens", "args_no_boolean_flags", "args_no_equals"):
    assert ours[form] == agent[form], form


# Each trial's check compiles its first batch: the fast tier checks two
# trials of each sweep, the slow tier ten.
@pytest.mark.parametrize("count", [2, pytest.param(10, marks=pytest.mark.slow)])
@pytest.mark.parametrize("path", YAMLS, ids=os.path.basename)
def test_trial_configs_pass_the_experiment_s_checks(path, count):
  """What a trial would fail on in its first second (bad bounds, memory) fails here."""
  from experiments import common
  sweep = sweep_run.load(path)
  module = _module(sweep)
  options = getattr(load_experiment(module), "task_options", ())
  was_parsed = flags.FLAGS.is_parsed()
  with flagsaver.flagsaver():
    try:
      for parameters in sweep_run.trials(sweep, count, seed=2):
        flags.FLAGS([module] + sweep_run.command(sweep, parameters)[3:])
        common.config_from_flags(module.split(".")[1], options)
    finally:
      if not was_parsed:
        flags.FLAGS.unparse_flags()


def test_grid_method_enumerates_the_product():
  sweep = {"method": "grid", "parameters": {"a": {"values": [1, 2]}, "b": {"values": ["x", "y"]},
                                            "c": {"value": 0}}}
  assert sweep_run.trials(sweep, 10) == [
      {"a": 1, "b": "x", "c": 0}, {"a": 1, "b": "y", "c": 0},
      {"a": 2, "b": "x", "c": 0}, {"a": 2, "b": "y", "c": 0}]
  assert len(sweep_run.trials(sweep, 3, log=lambda _: None)) == 3
  with pytest.raises(ValueError, match="grid"):
    sweep_run.trials({"method": "grid", "parameters": {"a": {"min": 0.0, "max": 1.0}}}, 2)


def test_random_draws_respect_each_distribution():
  sweep = {"method": "random", "parameters": {
      "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
      "n": {"distribution": "int_uniform", "min": 2, "max": 5},
      "u": {"min": 0.5, "max": 1.5},
      "k": {"min": 1, "max": 3},
      "size": {"distribution": "q_uniform", "min": 16, "max": 256, "q": 16},
      "w": {"distribution": "q_log_uniform_values", "min": 10, "max": 1000, "q": 10},
      "e": {"distribution": "log_uniform", "min": -2.0, "max": 0.0},
      "g": {"distribution": "normal", "mu": 0.0, "sigma": 1.0},
      "c": {"values": ["a", "b"], "probabilities": [0.0, 1.0]},
      "fixed": {"value": 7}}}
  draws = sweep_run.trials(sweep, 100)
  assert len({d["lr"] for d in draws}) == 100
  for d in draws:
    assert 1e-4 <= d["lr"] <= 1e-2 and 2 <= d["n"] <= 5 and 0.5 <= d["u"] <= 1.5
    assert isinstance(d["k"], int) and 1 <= d["k"] <= 3
    assert isinstance(d["size"], int) and d["size"] % 16 == 0 and 16 <= d["size"] <= 256
    assert isinstance(d["w"], int) and d["w"] % 10 == 0 and 10 <= d["w"] <= 1000
    assert 0.13 < d["e"] <= 1.0 and isinstance(d["g"], float)
    assert d["c"] == "b" and d["fixed"] == 7
  assert sweep_run.trials(sweep, 5, seed=3) == sweep_run.trials(sweep, 5, seed=3)


def test_bayes_falls_back_to_random_with_a_note():
  notes = []
  sweep = {"method": "bayes", "parameters": {"a": {"values": [1, 2, 3]}}}
  assert len(sweep_run.trials(sweep, 4, log=notes.append)) == 4
  assert len(notes) == 1 and "random" in notes[0]


def test_unknown_macros_and_distributions_are_errors():
  with pytest.raises(ValueError, match="macro"):
    sweep_run.command({"command": ["${interpreter}", "${nonsense}"]}, {})
  with pytest.raises(ValueError, match="distribution"):
    sweep_run.trials({"method": "random", "parameters": {
        "a": {"distribution": "zipf", "min": 1, "max": 2}}}, 1)


# The runner itself -----------------------------------------------------------------

_FAKE_EXPERIMENT = textwrap.dedent("""
    # Stands in for an experiment: writes the summary.json a run with
    # --converged of --seeds seeds would, or fails when --converged < 0.
    import json, os, sys
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
    converged, seeds = int(args["converged"]), int(args["seeds"])
    assert args["wandb"] == "off" and args["progress"] == "false"
    if converged == -2:  # dies without a word
      import signal
      os.kill(os.getpid(), signal.SIGKILL)
    if converged == -3:
      print("error: a first complaint")
      sys.exit(3)
    if converged < 0:
      print("warming up")
      sys.exit("error: this trial fails")
    os.makedirs(args["out_dir"])
    summary = {"aggregate": {"seeds": seeds, "converged": converged, "diverged": 0,
               "steps_to_converge": {"median": 1000.0 / converged if converged else None},
               "seeds_under_1_bit_error_by_length": {"20": converged},
               "median_bits_by_length": {"20": 1.0}}}
    with open(os.path.join(args["out_dir"], "summary.json"), "w") as f:
      json.dump(summary, f)
""")


def _fake_sweep(tmp_path, goal, metric, converged=(1, -1, 4, 0, 2)):
  script = tmp_path / "fake_experiment.py"
  script.write_text(_FAKE_EXPERIMENT)
  sweep = {"program": str(script), "method": "grid",
           "metric": {"name": metric, "goal": goal},
           "parameters": {"converged": {"values": list(converged)}, "seeds": {"value": 4}},
           "command": ["${env}", "${interpreter}", "${program}", "${args}", "--wandb=online"]}
  path = tmp_path / "fake.yaml"
  path.write_text(json.dumps(sweep))  # JSON is YAML
  return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("goal,metric,order", [
    ("maximize", "converged_fraction", [2, 4, 0, 3, 1]),
    ("minimize", "median_steps_to_converge", [2, 4, 0, 3, 1]),  # trial 3: no median
])
def test_the_runner_ranks_trials_by_the_metric_failures_last(tmp_path, goal, metric, order):
  out_dir = tmp_path / "sweep"
  results = sweep_run.main([_fake_sweep(tmp_path, goal, metric), "--trials", "9",
                            "--out_dir", str(out_dir), "--set", "seeds=8"])
  assert [r["trial"] for r in results] == order
  failed = [r for r in results if r["returncode"] != 0]
  assert [r["trial"] for r in failed] == [1] and results[-1]["trial"] == 1
  assert "this trial fails" in (out_dir / "trial_001.log").read_text()
  best = results[0]
  assert best["parameters"] == {"converged": 4, "seeds": 8}  # --set wins over the YAML
  assert best["metrics"]["converged_fraction"] == 0.5
  ranking = json.loads((out_dir / "ranking.json").read_text())
  assert [t["trial"] for t in ranking["trials"]] == order and ranking["goal"] == goal
  rows = [line for line in (out_dir / "ranking.md").read_text().splitlines()
          if line.startswith("| ") and line[2].isdigit()]
  assert [int(row.split("|")[2]) for row in rows] == order
  # The failed trial's row ends with its reason; the others' reason is empty.
  assert [row.split("|")[-2].strip() for row in rows] == [""] * 4 + ["error: this trial fails"]


def _rows(text: str) -> dict:
  """trial -> its cells, from a printed ranking table."""
  rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
  return {int(row.split("|")[2]): [c.strip() for c in row.split("|")[1:-1]] for row in rows}


@pytest.mark.slow
def test_a_sweep_with_failed_trials_exits_1_and_its_table_says_why(tmp_path):
  sweep = _fake_sweep(tmp_path, "maximize", "converged_fraction", converged=(2, -1, -2, -3, 1))
  result = run_python("-m", "sweeps.run", sweep, "--trials=9", f"--out_dir={tmp_path / 's'}")
  assert result.returncode == 1, result.stdout + result.stderr
  rows = _rows(result.stdout)
  assert list(rows) == [0, 4, 1, 2, 3]  # ranked; the failures last, in trial order
  assert {t: cells[-1] for t, cells in rows.items()} == {
      0: "", 4: "", 1: "error: this trial fails", 2: "killed by SIGKILL",
      3: "error: a first complaint"}
  assert "3 of 5 trials failed: 1, 2, 3" in result.stdout
  ranking = json.loads((tmp_path / "s" / "ranking.json").read_text())
  assert {t["trial"]: t["failure"] for t in ranking["trials"]}[2] == "killed by SIGKILL"
  # Every trial fine: exit 0.
  fine = _fake_sweep(tmp_path, "maximize", "converged_fraction", converged=(2, 1))
  result = run_python("-m", "sweeps.run", fine, "--trials=9", f"--out_dir={tmp_path / 'f'}")
  assert result.returncode == 0, result.stdout + result.stderr
  assert "trials failed" not in result.stdout


def test_a_failure_is_the_last_error_line_of_the_log_or_the_exit(tmp_path):
  log, summary = tmp_path / "trial.log", tmp_path / "summary.json"
  log.write_text("starting\nerror: the first\nTraceback ...\nerror: the last one\nbye\n")
  assert sweep_run.failure(1, str(log), str(summary)) == "error: the last one"
  log.write_text("no complaint at all\n")
  assert sweep_run.failure(2, str(log), str(summary)) == "exit code 2"
  assert sweep_run.failure(-15, str(log), str(summary)) == "killed by SIGTERM"
  assert sweep_run.failure(-9, str(tmp_path / "missing.log"), str(summary)) == (
      "killed by SIGKILL")
  assert sweep_run.failure(0, str(log), str(summary)) == "exit 0 without a summary.json"
  summary.write_text("{}")
  assert sweep_run.failure(0, str(log), str(summary)) is None


def _copy_sweep(tmp_path, parameters, extra=()):
  path = tmp_path / "bad.yaml"
  path.write_text(json.dumps({
      "method": "grid", "metric": {"name": "converged_fraction"},
      "parameters": parameters,
      "command": ["${env}", "${interpreter}", "-m", "experiments.copy", "${args}", *extra]}))
  return str(path)


@pytest.mark.parametrize("parameters,extra,message", [
    ({"batch_size": {"values": [4, "four"]}}, (),
     "trial 1: parameter batch_size=four: flag --batch_size=four: invalid literal for int() "
     "with base 10: 'four'"),
    ({"lr": {"values": [1e-3]}, "batch_sise": {"value": 4}}, (),
     "trial 0: parameter 'batch_sise' is not a flag of experiments.copy"),
    ({"plots": {"values": [False, 3]}}, (),
     "trial 1: parameter plots=3: flag --plots=3: ('Non-boolean argument to boolean flag', '3')"),
    ({"seeds": {"values": [2, 2.5]}}, (), "trial 1: parameter seeds=2.5: "),
    ({"seeds": {"value": 2}}, ("--progres=false",),
     "trial 0: the sweep's command: Unknown command line flag 'progres'"),
])
def test_every_trial_is_checked_before_any_runs(tmp_path, monkeypatch, parameters, extra,
                                               message):
  monkeypatch.chdir(tmp_path)
  sweep = _copy_sweep(tmp_path, parameters, extra)
  out_dir = tmp_path / "sweep"
  with pytest.raises(ValueError) as error:
    sweep_run.main([sweep, "--trials=4", f"--out_dir={out_dir}"])
  assert str(error.value).startswith(message), str(error.value)
  assert "\n" not in str(error.value)
  assert sorted(os.listdir(tmp_path)) == ["bad.yaml"]  # nothing run, nothing written


def test_a_sound_sweep_passes_the_check(tmp_path, capsys):
  sweep = _copy_sweep(tmp_path, {"batch_size": {"values": [2, 4]}, "plots": {"value": False},
                                 "test_lengths": {"values": [[10, 20], [30]]},
                                 "lr": {"value": 1e-3}})
  sweep_run.main([sweep, "--trials=4", "--dry_run", "--set", "seeds=3"])
  assert len([l for l in capsys.readouterr().out.splitlines() if l.startswith("trial ")]) == 4


TINY = ["steps=100", "eval_every=50", "checkpoint_every=50", "seeds=2", "batch_size=2",
        "controller_size=8", "memory_rows=8", "memory_width=4", "max_length=3",
        "test_lengths=2,4", "test_memory_size=8", "test_batch=4", "eval_batch=4",
        "plots=false"]


@pytest.mark.slow
def test_the_runner_runs_and_ranks_a_two_trial_copy_sweep(tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)  # the YAML's command is `python -m experiments.copy`
  monkeypatch.setenv("PYTHONPATH", ROOT)
  out_dir = tmp_path / "sweep"
  argv = [os.path.join(ROOT, "sweeps", "copy.yaml"), "--trials", "2", "--out_dir",
          str(out_dir)] + [x for item in TINY for x in ("--set", item)]
  results = sweep_run.main(argv)
  assert len(results) == 2
  for r in results:
    assert r["returncode"] == 0, (out_dir / f"trial_{r['trial']:03d}.log").read_text()[-3000:]
    with open(os.path.join(r["dir"], "summary.json")) as f:
      agg = json.load(f)["aggregate"]
    assert r["converged_fraction"] == agg["converged"] / agg["seeds"]
    with open(os.path.join(r["dir"], "config.json")) as f:
      config = json.load(f)
    assert config["train"]["learning_rate"] == pytest.approx(r["parameters"]["lr"])
    assert config["train"]["optimizer"] == r["parameters"]["optimizer"]
    assert config["model"]["controller"] == r["parameters"]["controller"]
    assert config["train"]["steps"] == 100 and config["train"]["seeds"] == 2
    assert not os.path.exists(os.path.join(r["dir"], "wandb"))  # --wandb=off won
  values = [r["converged_fraction"] for r in results]
  assert values == sorted(values, reverse=True)
  assert sorted(r["trial"] for r in results) == [0, 1]
  rows = [line for line in (out_dir / "ranking.md").read_text().splitlines()
          if line.startswith("| ") and line[2].isdigit()]
  assert len(rows) == 2


def test_ties_on_the_metric_go_to_the_lower_cost_at_the_longest_length():
  def trial(index, fraction, bits):
    return {"trial": index, "metrics": {"under_1_bit_at_longest_fraction": fraction,
                                        "median_bits_at_longest": bits}}
  results = [trial(0, 0.5, 9.0), trial(1, 0.75, 30.0), trial(2, 0.5, 0.2),
             trial(3, 0.5, None), {"trial": 4, "metrics": {}}]
  ranked = sweep_run.rank(results, "under_1_bit_at_longest_fraction", "maximize")
  assert [r["trial"] for r in ranked] == [1, 2, 0, 3, 4]


def test_a_set_parameter_leaves_the_grid_so_no_trial_repeats(tmp_path, capsys):
  sweep = tmp_path / "grid.yaml"
  sweep.write_text(json.dumps({
      "method": "grid", "metric": {"name": "converged_fraction"},
      "parameters": {"batch_size": {"values": [1, 2]}, "seeds": {"values": [10, 20]}},
      "command": ["${env}", "${interpreter}", "-m", "experiments.copy", "${args}"]}))
  sweep_run.main([str(sweep), "--trials", "4", "--set", "seeds=30", "--dry_run"])
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("trial ")]
  # Two trials, batch_size 1 and 2, both with seeds = 30: not four with two repeats.
  assert len(lines) == 2
  assert "--batch_size=1" in lines[0] and "--batch_size=2" in lines[1]
  assert all("--seeds=30" in l and "--seeds=10" not in l and "--seeds=20" not in l
             for l in lines)


def test_a_study_screen_runs_from_sweeps_studies(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the default out_dir is relative; nothing is written
  sweep_run.main([os.path.join(ROOT, "sweeps", "studies", "copy_memory_rows.yaml"),
                  "--trials", "6", "--dry_run"])
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("trial ")]
  assert [next(a for a in l.split() if a.startswith("--memory_rows=")) for l in lines] == [
      f"--memory_rows={n}" for n in (24, 32, 40, 48, 64, 128)]
  assert all("-m experiments.copy" in l and "--test_memory_size=128" in l for l in lines)
  assert not os.listdir(tmp_path)
