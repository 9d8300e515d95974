"""Bad input at every entry point: one line "error: ...", a non-zero exit, no
traceback, and nothing on disk created or changed.

Each case runs the command line in a fresh process against a workspace of
broken and sound run directories and sweep files. Nothing here trains: every
case must be refused before anything compiles.
"""
import json
import os

import pytest

from tests.conftest import TINY_EXPERIMENT, run_python


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  """{ws}/afile: a regular file; run: a run directory (config.json,
  metrics.jsonl); nometrics: config.json only; badjson, missingkeys: broken
  config.json; *.yaml: broken sweeps."""
  ws = tmp_path_factory.mktemp("bad_input")
  (ws / "afile").write_text("not a directory\n")
  for name in ("run", "nometrics", "badjson", "missingkeys"):
    (ws / name).mkdir()
  config = TINY_EXPERIMENT.to_json()
  (ws / "run" / "config.json").write_text(json.dumps(config))
  (ws / "run" / "metrics.jsonl").write_text(json.dumps(
      {"step": 50, "eval_loss": [3.0, 4.0], "eval_bit_errors": [1.0, 2.0]}) + "\n")
  (ws / "nometrics" / "config.json").write_text(json.dumps(config))
  (ws / "badjson" / "config.json").write_text('{"task": "copy",')
  (ws / "missingkeys" / "config.json").write_text('{"task": "copy"}')
  sweep = {"method": "random", "metric": {"name": "converged_fraction", "goal": "maximize"},
           "parameters": {"lr": {"values": [0.001]}},
           "command": ["${env}", "${interpreter}", "-m", "experiments.copy", "${args}"]}
  (ws / "ok.yaml").write_text(json.dumps(sweep))  # JSON is YAML
  (ws / "invalid.yaml").write_text("method: [random\n")
  (ws / "list.yaml").write_text("- method\n- metric\n")
  (ws / "nocommand.yaml").write_text(json.dumps({k: v for k, v in sweep.items()
                                                 if k != "command"}))
  (ws / "badmethod.yaml").write_text(json.dumps({**sweep, "method": "hyperband"}))
  (ws / "unknownparameter.yaml").write_text(json.dumps(
      {**sweep, "parameters": {"lr": {"values": [0.001]}, "batch_sise": {"value": 4}}}))
  (ws / "badvalue.yaml").write_text(json.dumps(
      {**sweep, "parameters": {"batch_size": {"values": [4, "four"]}}}))
  return ws


FRESH = "{ws}/fresh/run"  # must not exist after any case
COPY = ("-m", "experiments.copy")

# (id, interpreter arguments with {ws}, a word the error line must contain)
CASES = [
    # experiments.<task>: settings
    ("eval_every_0", [*COPY, "--eval_every=0", f"--out_dir={FRESH}"], "eval_every"),
    ("checkpoint_every_0", [*COPY, "--checkpoint_every=0", f"--out_dir={FRESH}"],
     "checkpoint_every"),
    ("lr_inf", [*COPY, "--lr=inf", f"--out_dir={FRESH}"], "learning_rate"),
    ("lr_nan", [*COPY, "--lr=nan", f"--out_dir={FRESH}"], "learning_rate"),
    ("lr_negative", [*COPY, "--lr=-0.001", f"--out_dir={FRESH}"], "learning_rate"),
    ("unknown_model", [*COPY, "--model=gru", f"--out_dir={FRESH}"], "--model"),
    ("unknown_wandb", [*COPY, "--wandb=maybe", f"--out_dir={FRESH}"], "--wandb"),
    ("test_lengths_not_integers", [*COPY, "--test_lengths=10,x", f"--out_dir={FRESH}"],
     "test_lengths"),
    ("negative_seed", [*COPY, "--seed=-1", f"--out_dir={FRESH}"], "seed"),
    ("devices_0", [*COPY, "--devices=0", f"--out_dir={FRESH}"], "devices"),
    ("devices_too_many", [*COPY, "--devices=64", f"--out_dir={FRESH}"], "devices"),
    ("test_memory_size_0", [*COPY, "--test_memory_size=0", f"--out_dir={FRESH}"],
     "test_memory_size"),
    ("eval_memory_size_0", [*COPY, "--eval_memory_size=0", f"--out_dir={FRESH}"],
     "eval_memory_size"),
    ("eval_memory_below_shifts", [*COPY, "--eval_memory_size=2", f"--out_dir={FRESH}"],
     "eval_memory_size 2 is smaller"),
    ("eval_memory_below_length", [*COPY, "--eval_memory_size=10", f"--out_dir={FRESH}"],
     "eval_memory_size is 10"),
    ("memory_too_small", [*COPY, "--max_length=200", f"--out_dir={FRESH}"], "memory"),
    ("converged_length_beyond_memory", [*COPY, "--max_length_while_converged=40",
                                        f"--out_dir={FRESH}"], "memory_rows is 32"),
    ("train_memory_below_length", [*COPY, "--train_memory_sizes=32,16", f"--out_dir={FRESH}"],
     "train_memory_sizes is 16"),
    ("converged_length_below_max", [*COPY, "--max_length_while_converged=10",
                                    f"--out_dir={FRESH}"], "max_length_while_converged"),
    ("steps_not_a_number", [*COPY, "--steps=many", f"--out_dir={FRESH}"], "--steps"),
    ("unknown_flag", [*COPY, "--step=10", f"--out_dir={FRESH}"], "step"),
    ("stray_argument", [*COPY, "copy", f"--out_dir={FRESH}"], "unexpected"),
    # experiments.<task>: a run that cannot fit this machine's memory (the
    # estimate, before anything compiles; see `_fits_here`)
    ("batch_size_too_big", [*COPY, "--batch_size=100000", f"--out_dir={FRESH}"],
     "lower --batch_size"),
    ("memory_rows_too_many", [*COPY, "--memory_rows=1000000", f"--out_dir={FRESH}"],
     "on 1000000 memory rows"),
    ("seeds_too_many", [*COPY, "--seeds=100000", f"--out_dir={FRESH}"], "lower --seeds"),
    # experiments.<task>: the run directory
    ("out_dir_is_a_file", [*COPY, "--out_dir={ws}/afile"], "afile"),
    ("out_dir_under_a_file", [*COPY, "--out_dir={ws}/afile/run"], "afile"),
    ("out_dir_in_proc", [*COPY, "--out_dir=/proc/ntm_jax_run"], "/proc"),
    ("out_dir_holds_a_run", [*COPY, "--out_dir={ws}/run"], "already holds a run"),
    ("resume_without_out_dir", [*COPY, "--resume"], "--out_dir"),
    ("resume_invalid_json", [*COPY, "--resume", "--out_dir={ws}/badjson"],
     "badjson/config.json"),
    ("resume_missing_keys", [*COPY, "--resume", "--out_dir={ws}/missingkeys"],
     "missingkeys/config.json"),
    ("resume_no_run", [*COPY, "--resume", f"--out_dir={FRESH}"], "no config.json"),
    ("resume_and_overwrite", [*COPY, "--resume", "--overwrite", "--out_dir={ws}/run"],
     "overwrite"),
    # the other tasks, and experiments.train
    ("repeat_copy_test_repeats", ["-m", "experiments.repeat_copy", "--test_repeats=a",
                                  f"--out_dir={FRESH}"], "test_repeats"),
    ("associative_recall_eval_every", ["-m", "experiments.associative_recall",
                                       "--eval_every=0", f"--out_dir={FRESH}"], "eval_every"),
    ("ngrams_lr", ["-m", "experiments.ngrams", "--lr=nan", f"--out_dir={FRESH}"],
     "learning_rate"),
    ("priority_sort_seeds", ["-m", "experiments.priority_sort", "--seeds=0",
                             f"--out_dir={FRESH}"], "seeds"),
    ("dyck_batch_size", ["-m", "experiments.dyck", "--batch_size=0", f"--out_dir={FRESH}"],
     "batch_size"),
    ("train_without_task", ["-m", "experiments.train", f"--out_dir={FRESH}"], "--task"),
    ("train_unknown_task", ["-m", "experiments.train", "--task=copyy", f"--out_dir={FRESH}"],
     "copyy"),
    ("train_task_that_does_not_import", ["-m", "experiments.train",
                                         "--task=no_such_module:Task", f"--out_dir={FRESH}"],
     "no_such_module"),
    # experiments.inspect
    ("inspect_missing_run_dir", ["-m", "experiments.inspect", "{ws}/nothing"], "nothing"),
    ("inspect_no_arguments", ["-m", "experiments.inspect"], "usage"),
    ("inspect_seed_out_of_range", ["-m", "experiments.inspect", "{ws}/run", "--seed=2"],
     "--seed"),
    ("inspect_length_0", ["-m", "experiments.inspect", "{ws}/run", "--length=0"], "--length"),
    ("inspect_invalid_json", ["-m", "experiments.inspect", "{ws}/badjson"],
     "badjson/config.json"),
    ("inspect_unknown_pretrained", ["-m", "experiments.inspect", "--pretrained=sort"], "sort"),
    ("inspect_pretrained_out_dir_is_a_file", ["-m", "experiments.inspect", "--pretrained=copy",
                                              "--out_dir={ws}/afile"], "afile"),
    # experiments.compare
    ("compare_one_dir", ["-m", "experiments.compare", "{ws}/run"], "2"),
    ("compare_no_metrics", ["-m", "experiments.compare", "{ws}/run", "{ws}/nometrics"],
     "nometrics"),
    ("compare_missing_dir", ["-m", "experiments.compare", "{ws}/run", "{ws}/nothing"],
     "nothing"),
    ("compare_missing_keys", ["-m", "experiments.compare", "{ws}/run", "{ws}/missingkeys"],
     "missingkeys/config.json"),
    # sweeps.run
    ("sweep_missing_file", ["-m", "sweeps.run", "{ws}/nothing.yaml"], "nothing.yaml"),
    ("sweep_invalid_yaml", ["-m", "sweeps.run", "{ws}/invalid.yaml"], "invalid.yaml"),
    ("sweep_not_a_mapping", ["-m", "sweeps.run", "{ws}/list.yaml"], "list.yaml"),
    ("sweep_missing_key", ["-m", "sweeps.run", "{ws}/nocommand.yaml"], "command"),
    ("sweep_bad_method", ["-m", "sweeps.run", "{ws}/badmethod.yaml"], "hyperband"),
    ("sweep_trials_0", ["-m", "sweeps.run", "{ws}/ok.yaml", "--trials=0",
                        f"--out_dir={FRESH}"], "--trials"),
    ("sweep_out_dir_is_a_file", ["-m", "sweeps.run", "{ws}/ok.yaml", "--out_dir={ws}/afile"],
     "afile"),
    ("sweep_bad_set", ["-m", "sweeps.run", "{ws}/ok.yaml", "--set=lr", f"--out_dir={FRESH}"],
     "--set"),
    ("sweep_unknown_parameter", ["-m", "sweeps.run", "{ws}/unknownparameter.yaml",
                                 f"--out_dir={FRESH}"], "trial 0: parameter 'batch_sise'"),
    ("sweep_badly_typed_value", ["-m", "sweeps.run", "{ws}/badvalue.yaml", "--trials=2",
                                 f"--out_dir={FRESH}"], "parameter batch_size=four"),
    ("sweep_set_unknown_flag", ["-m", "sweeps.run", "{ws}/ok.yaml", "--set=step=5",
                                f"--out_dir={FRESH}"], "parameter 'step'"),
]


def _snapshot(root) -> dict:
  """Every file and folder under root: path -> (kind, size, mtime)."""
  tree = {}
  for folder, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(folder, name)
      info = os.stat(path)
      tree[os.path.relpath(path, root)] = (os.path.isdir(path), info.st_size,
                                           info.st_mtime_ns)
  return tree


# The memory cases need this much memory (the smallest, --seeds=100000, about
# 68 GB on the copy experiment): on a machine with more free they would train.
_TOO_BIG_CASES = {"batch_size_too_big", "memory_rows_too_many", "seeds_too_many"}
_LARGEST_MACHINE = 60e9


def _fits_here() -> bool:
  """Whether this machine has the memory to run the memory cases for real
  (the cases run on the CPU; asking about a CPU starts no JAX backend)."""
  import types
  from ntm_jax.training import memory_estimate
  available = memory_estimate.available_memory_bytes(types.SimpleNamespace(platform="cpu"))
  return available is None or available > _LARGEST_MACHINE


def _param(case):
  """A CASES entry as a pytest parameter; a memory case is skipped where it fits."""
  name, argv, word = case
  marks = [pytest.mark.skipif(name in _TOO_BIG_CASES and _fits_here(),
                              reason="this machine's memory would take the run")]
  return pytest.param(argv, word, id=name, marks=marks)


@pytest.mark.slow
@pytest.mark.parametrize("argv,word", [_param(case) for case in CASES])
def test_bad_input_is_one_error_line_and_changes_nothing(workspace, argv, word):
  args = [a.replace("{ws}", str(workspace)) for a in argv]
  before = _snapshot(workspace)
  # cwd: the workspace, so a default out_dir (runs/...) would show up too.
  result = run_python(*args, cwd=str(workspace), timeout=120,
                      env={"WANDB_MODE": None, "WANDB_API_KEY": None})
  output = (result.stdout + result.stderr).strip()
  assert result.returncode != 0, output
  assert "Traceback" not in output, output
  lines = output.splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > 7, output
  assert word in lines[0], output
  assert _snapshot(workspace) == before
  assert not os.path.exists(workspace / "fresh")


def test_the_table_covers_every_entry_point():
  modules = {case[1][1] for case in CASES}
  assert modules == {f"experiments.{m}" for m in (
      "copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort", "dyck",
      "train", "inspect", "compare")} | {"sweeps.run"}
  assert len(CASES) >= 25


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits "
                    "(out_dir_in_proc covers an unwritable place for root)")
def test_an_unwritable_out_dir_is_refused_before_anything_runs(tmp_path):
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o555)
  try:
    result = run_python(*COPY, f"--out_dir={locked}/run", timeout=120)
  finally:
    locked.chmod(0o755)
  output = (result.stdout + result.stderr).strip()
  assert result.returncode != 0 and output.startswith("error: ") and "\n" not in output
  assert "cannot write" in output and os.listdir(locked) == []


@pytest.mark.slow
def test_steps_need_not_be_a_multiple_of_eval_every(tmp_path):
  """Once refused: 50 steps in chunks of 20 run as 20 + 20 + 10, evaluate
  after each, and checkpoint at the end of the chunk crossing
  checkpoint_every=25 (step 40) and at the end."""
  out_dir = tmp_path / "run"
  result = run_python(
      *COPY, "--steps=50", "--eval_every=20", "--checkpoint_every=25", "--seeds=2",
      "--batch_size=2", "--controller_size=8", "--memory_rows=8", "--memory_width=4",
      "--max_length=3", "--test_lengths=2,4", "--test_memory_size=8", "--test_batch=4",
      "--eval_batch=4", "--noprogress", "--noplots", f"--out_dir={out_dir}", timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
  assert [row["step"] for row in rows] == list(range(1, 51))
  assert [row["step"] for row in rows if "eval_loss" in row] == [20, 40, 50]
  assert sorted(os.listdir(out_dir / "checkpoints")) == ["40", "50"]
  config = json.loads((out_dir / "config.json").read_text())
  assert config["train"]["steps"] == 50
  assert config["provenance"]["argv"][1:4] == ["--steps=50", "--eval_every=20",
                                               "--checkpoint_every=25"]
