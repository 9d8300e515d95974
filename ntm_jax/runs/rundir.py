"""The run directory on disk: where it is, its config.json, metrics.jsonl and
summary.json (one reader and one writer each).

    <out_dir>/config.json     the ExperimentConfig (`ExperimentConfig.to_json`)
    <out_dir>/metrics.jsonl   a row per training step, lists over seeds
    <out_dir>/summary.json    per seed and aggregate results (`summary.py`)
    <out_dir>/checkpoints/    orbax (`checkpoints.py`)
    <out_dir>/plots/          PNGs (`ntm_jax.analysis.inspection`)
"""
import datetime
import json
import os
from typing import Optional

from ntm_jax.config import ExperimentConfig


def load_json(path: str) -> dict:
  """A JSON file's content; one-line ValueError naming the file otherwise."""
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise ValueError(f"{path} does not exist") from None
  except (OSError, UnicodeDecodeError) as error:
    raise ValueError(f"{path}: cannot read ({error})") from None
  except json.JSONDecodeError as error:
    raise ValueError(f"{path}: not valid JSON ({error})") from None


def default_out_dir(task: str) -> str:
  """runs/<task>/<timestamp>; task: a task name, or an import path
  "module:Class" (the class names the folder)."""
  return os.path.join("runs", task.split(":")[-1],
                      datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


def config_path(out_dir: str) -> str:
  return os.path.join(out_dir, "config.json")


def saved_config(out_dir: str) -> ExperimentConfig:
  """The ExperimentConfig a run directory was started with (its config.json)."""
  path = config_path(out_dir)
  if not os.path.exists(path):
    raise ValueError(f"{out_dir} holds no run to resume or read (no config.json)")
  return ExperimentConfig.from_json(load_json(path), where=path)


def load_summary(out_dir: str) -> Optional[dict]:
  """summary.json's content, or None for a run that has not finished."""
  path = os.path.join(out_dir, "summary.json")
  if not os.path.exists(path):
    return None
  return load_json(path)


def read_metrics(path: str, keep_through_step: Optional[int] = None) -> list:
  """metrics.jsonl's rows as (dict, line) pairs: a line cut short by a crash
  ends the file, and so does the first row past keep_through_step."""
  rows = []
  if not os.path.exists(path):
    return rows
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        break  # a line cut by a crash: drop it and everything after
      if keep_through_step is not None and row["step"] > keep_through_step:
        break
      rows.append((row, line if line.endswith("\n") else line + "\n"))
  return rows


def load_metrics(out_dir: str) -> list:
  """metrics.jsonl as a list of dicts."""
  path = os.path.join(out_dir, "metrics.jsonl")
  if not os.path.exists(path):
    raise ValueError(f"{out_dir} has no metrics.jsonl")
  return [row for row, _ in read_metrics(path)]


def missing_steps(steps, through: int) -> list:
  """[first, last] of every run of the steps 1..through absent from `steps`
  (ascending row steps; training steps are numbered from 1)."""
  gaps, expected = [], 1
  for step in steps:
    if step > expected:
      gaps.append([expected, step - 1])
    expected = max(expected, step + 1)
  if expected <= through:
    gaps.append([expected, through])
  return gaps


class MetricsFile:
  """metrics.jsonl: one line per training step, lists over seeds.

  Opening it keeps the rows through `keep_through_step` (a resume's
  checkpoint) and drops a line cut by a crash and every row after it.

  Attributes:
    gaps: [first, last] of each run of steps up to keep_through_step that
      has no row (a file cut before the checkpoint a run resumes from).
  """

  def __init__(self, path: str, keep_through_step: int):
    self.path = path
    kept = read_metrics(path, keep_through_step)
    self.gaps = missing_steps([row["step"] for row, _ in kept], keep_through_step)
    with open(path, "w") as f:
      f.writelines(line for _, line in kept)
    self.file = open(path, "a")

  def write(self, rows) -> None:
    self.file.writelines(json.dumps(row) + "\n" for row in rows)
    self.file.flush()

  def close(self) -> None:
    self.file.close()


class NoMetricsFile:
  """metrics.jsonl on every host but the first: nothing to write."""

  gaps = ()

  def write(self, rows) -> None:
    pass

  def close(self) -> None:
    pass


def write_json(path: str, data) -> None:
  """Write-then-rename, so a crash never leaves a half-written file."""
  with open(path + ".tmp", "w") as f:
    json.dump(data, f, indent=2)
  os.replace(path + ".tmp", path)




def check_out_dir(out_dir: str, flag: str = "--out_dir") -> None:
  """Raises ValueError (one line, naming `flag`) unless `out_dir` can take a
  run's files: it is a directory, or does not exist yet, and it (or the
  nearest ancestor that exists) can be written. Checked before any work
  starts, so a bad path costs nothing; a failed check creates nothing.
  """
  import tempfile
  path = os.path.abspath(out_dir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"{flag} {out_dir} exists and is not a directory")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f"{flag} {out_dir}: {existing} is not a directory")
  # os.access trusts permission bits, which root ignores and /proc, /sys or
  # a read-only mount override: only creating something answers. An empty
  # directory made and removed at once leaves nothing behind.
  try:
    os.rmdir(tempfile.mkdtemp(prefix=".write_check_", dir=existing))
  except OSError as error:
    raise ValueError(f"{flag} {out_dir}: cannot write to {existing} "
                     f"({error.strerror or error})") from None
