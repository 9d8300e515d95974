"""`python -m experiments.<task> --help` lists every flag the experiment
takes, the shared ones and its own, and exits 0."""
import re

import pytest
from absl import flags

from conftest import run_python
from conftest import load_experiment

EXPERIMENTS = ["copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort",
               "dyck", "train"]
# Shared flags from experiments/common.py, and each experiment's own.
SHARED = ["--seeds", "--steps", "--memory_rows", "--out_dir", "--resume", "--lr",
          "--batch_size", "--wandb", "--model", "--test_lengths"]
OWN = {"repeat_copy": ["--encoding", "--max_repeats", "--test_repeats"], "train": ["--task"]}


def _listed(text: str) -> set:
  """The flags a help text lists, one "  --name: ..." (or --[no]name) line each."""
  return {"--" + m.group(1) for m in
          re.finditer(r"^\s+(?:-\S+,)?--(?:\[no\])?([a-z_]+):", text, re.MULTILINE)}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_the_experiment_s_help_text_lists_the_shared_flags_and_its_own(name):
  module = load_experiment(name)
  # What `--help` prints for the main module, here under its import name.
  listed = _listed(flags.FLAGS.module_help(module.__name__))
  assert set(SHARED + OWN.get(name, [])) <= listed, sorted(listed)
  # Every flag define_flags made is there (FLAGS knows which module defined it).
  shared = {"--" + f for f in flags.FLAGS
            if flags.FLAGS.find_module_defining_flag(f) == "experiments.common"}
  assert len(shared) > 50 and shared <= listed, sorted(shared - listed)


@pytest.mark.slow
@pytest.mark.parametrize("name,help_flag", [("copy", "--help"), ("copy", "-?"),
                                            ("copy", "--helpshort"),
                                            ("repeat_copy", "--help"), ("train", "--help")])
def test_help_on_the_command_line_lists_every_flag_and_exits_0(name, help_flag, tmp_path):
  result = run_python("-m", f"experiments.{name}", help_flag, cwd=str(tmp_path), timeout=120)
  assert result.returncode == 0, result.stdout + result.stderr
  assert result.stderr == ""
  listed = _listed(result.stdout)
  assert set(SHARED + OWN.get(name, [])) <= listed, result.stdout
  assert len(listed) > 50
  # Its first line is the experiment's docstring, and nothing was written.
  module = load_experiment(name)
  assert result.stdout.splitlines()[0] == module.__doc__.splitlines()[0]
  assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_helpfull_exits_0_too_and_a_bad_flag_is_still_one_error_line(tmp_path):
  full = run_python("-m", "experiments.copy", "--helpfull", cwd=str(tmp_path), timeout=120)
  assert full.returncode == 0 and "--seeds" in full.stdout and "absl.app" in full.stdout
  bad = run_python("-m", "experiments.copy", "--sedes=3", cwd=str(tmp_path), timeout=120)
  assert bad.returncode != 0 and bad.stdout == ""
  assert bad.stderr.strip().startswith("error: ") and "\n" not in bad.stderr.strip()
