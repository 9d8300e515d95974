"""Faults while a run trains end in one line and leave nothing half-made: a
checkpoint save that fails (a full disk) stops the run at that step with the
earlier checkpoints intact, and the next resume removes what the failed save
left; a metrics.jsonl cut before the checkpoint a run resumes from is said in
one line and recorded in summary.json; running out of memory is one line and
leaves no directory when nothing was trained.

The run is conftest's TINY_EXPERIMENT (checkpoints every 50 steps); the
faults are injected where orbax and XLA would raise them.
"""
import errno
import json
import os
import shutil
import sys

import jax
import pytest

import ntm_jax.runs.checkpoints as checkpoints
import ntm_jax.runs.engine as engine
import ntm_jax.runs.faults as faults
import ntm_jax.runs.loop as loop
import ntm_jax.runs.rundir as rundir

from conftest import TINY_EXPERIMENT as CONFIG
from conftest import run_python

DISK_FULL = OSError(errno.ENOSPC, "No space left on device")
XLA_OUT_OF_MEMORY = ("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 68719476736 "
                     "bytes.\nBufferAssignment OOM Debugging.\nBufferAssignment stats: ...")


def _run(out_dir, messages, **options):
  return engine.run(CONFIG, str(out_dir), progress=False, log=messages.append, **options)


def _steps(out_dir) -> list:
  return [row["step"] for row in rundir.load_metrics(str(out_dir))]


def _fail_on_second_call(monkeypatch, owner, name, error):
  """owner.name raises `error` on its second call (the second checkpoint)."""
  real, calls = getattr(owner, name), []

  def failing(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise error
    return real(*args, **kwargs)
  monkeypatch.setattr(owner, name, failing)


def _disk_full_on_second_save(monkeypatch, where):
  """The second checkpoint fails as a full disk does: while orbax starts the
  save ("save"), or in its background thread, renaming the written
  temporary folder into place ("finalise"), which then stays behind."""
  import orbax.checkpoint as ocp
  from orbax.checkpoint._src.path import atomicity
  if where == "save":
    _fail_on_second_call(monkeypatch, ocp.CheckpointManager, "save", DISK_FULL)
  else:
    _fail_on_second_call(monkeypatch, atomicity, "on_commit_callback", DISK_FULL)


@pytest.mark.parametrize("where", ["save", "finalise"])
def test_a_failed_save_stops_the_run_at_that_step_in_one_line(tmp_path, monkeypatch, where):
  _disk_full_on_second_save(monkeypatch, where)
  out_dir = tmp_path / "run"
  with pytest.raises(faults.RunFailed) as failed:
    _run(out_dir, [])
  message = str(failed.value)
  assert isinstance(failed.value, faults.SaveFailed) and "\n" not in message
  assert message == (f"no space left on device while saving step 100 to "
                     f"{out_dir}/checkpoints; the run can continue from step 50 with "
                     "--resume once there is room")
  # Training stopped at the failed save: no row, no checkpoint past it.
  assert _steps(out_dir) == list(range(1, 101))
  finished = [name for name in os.listdir(out_dir / "checkpoints") if name.isdigit()]
  assert finished == ["50"]
  # The first checkpoint is whole and is what the run would resume from.
  _, states = checkpoints.load_run(str(out_dir))
  assert states.step.tolist() == [50, 50]
  assert not (out_dir / "summary.json").exists()


def test_after_a_failed_save_only_the_failed_writes_reports_are_dropped(tmp_path, monkeypatch):
  """Research code that trains in-process keeps its own unraisable reports
  after a failed save; the failed write's "Event loop is closed" ones go."""
  reports = []
  monkeypatch.setattr(sys, "unraisablehook", reports.append)
  _disk_full_on_second_save(monkeypatch, "save")
  with pytest.raises(faults.SaveFailed):
    _run(tmp_path / "run", [])

  class Raising:
    def __init__(self, error):
      self.error = error

    def __del__(self):
      raise self.error

  Raising(RuntimeError("Event loop is closed"))  # dropped as it is collected
  Raising(ValueError("research code's own"))
  assert [str(report.exc_value) for report in reports] == ["research code's own"]


@pytest.mark.slow
def test_resume_removes_the_folder_a_failed_save_left(tiny_run_dir, tmp_path):
  out_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, out_dir)
  leftover = out_dir / "checkpoints" / "250.orbax-checkpoint-tmp-1733275200"
  (leftover / "default").mkdir(parents=True)
  (leftover / "default" / "half_written").write_bytes(b"\0" * 100)
  checkpoints.load_run(str(out_dir))  # reading a run is not owning it
  assert leftover.exists()
  messages = []
  _run(out_dir, messages, resume=True, resume_steps=250)
  assert not leftover.exists()
  assert sorted(os.listdir(out_dir / "checkpoints")) == ["200", "250"]
  assert sum("removed 1 unfinished checkpoint folder" in m and leftover.name in m
             for m in messages) == 1


@pytest.mark.slow
def test_resuming_after_a_failed_save_continues_from_the_checkpoint_before(
    tmp_path, monkeypatch):
  out_dir = tmp_path / "run"
  with monkeypatch.context() as patch:
    _disk_full_on_second_save(patch, "finalise")
    with pytest.raises(faults.SaveFailed):
      _run(out_dir, [])
  assert any(".orbax-checkpoint-tmp" in name for name in os.listdir(out_dir / "checkpoints"))
  messages = []
  summary = _run(out_dir, messages, resume=True)
  assert "resumed from step 50" in messages
  assert not any(".orbax-checkpoint-tmp" in n for n in os.listdir(out_dir / "checkpoints"))
  assert _steps(out_dir) == list(range(1, 201)) and "metrics_gaps" not in summary


@pytest.mark.parametrize("error,cause,room", [
    (DISK_FULL, "no space left on device", True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded", True),
    (OSError(errno.EACCES, "Permission denied"), "permission denied", False),
    (ValueError("Error writing local file \"/d/x\": No space left on device [source]"),
     "no space left on device", True),
    # What TensorStore raised when a 3 MB tmpfs filled up during a save:
    (ValueError('RESOURCE_EXHAUSTED: Error writing "above_count/1" in OCDBT database at '
                'local file "/d/ocdbt.process_0/": Failed writing: '),
     "no space left on device (the storage refused a write: RESOURCE_EXHAUSTED)", True),
    (RuntimeError("orbax went away\nwith a second line"), "orbax went away", False)])
def test_a_save_failure_names_its_cause_and_where_to_resume(error, cause, room):
  wrapped = RuntimeError("commit failed")
  wrapped.__cause__ = error  # orbax may wrap the file system's error
  for raised in (error, wrapped) if isinstance(error, OSError) else (error,):
    message = str(faults.save_failed(raised, 1000, "D/checkpoints", 500))
    assert message == (f"{cause} while saving step 1000 to D/checkpoints; the run can "
                       f"continue from step 500 with --resume once "
                       f"{'there is room' if room else 'that is fixed'}")
  first = str(faults.save_failed(DISK_FULL, 50, "D/checkpoints", None))
  assert "no earlier checkpoint exists, so --resume starts again from step 0" in first


def _cut_metrics(out_dir, at_step: int) -> None:
  """metrics.jsonl cut by a crash in the middle of the row for `at_step`."""
  path = out_dir / "metrics.jsonl"
  lines = path.read_text().splitlines(keepends=True)
  cut = next(i for i, line in enumerate(lines) if json.loads(line)["step"] == at_step)
  path.write_text("".join(lines[:cut]) + lines[cut][:len(lines[cut]) // 2])


@pytest.mark.slow
def test_a_metrics_file_cut_before_the_checkpoint_is_one_warning_and_in_the_summary(
    tiny_run_dir, tmp_path):
  out_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, out_dir)
  assert "metrics_gaps" not in rundir.load_summary(str(out_dir))
  _cut_metrics(out_dir, 120)  # the latest checkpoint is at step 200
  messages = []
  summary = _run(out_dir, messages, resume=True, resume_steps=250)
  warnings = [m for m in messages if m.startswith("warning: metrics.jsonl")]
  assert warnings == ["warning: metrics.jsonl has no rows for steps 120-200 (cut before the "
                      "checkpoint at step 200); those steps' evaluations are missing from "
                      "the learning curves"]
  assert summary["metrics_gaps"] == [[120, 200]]
  assert rundir.load_summary(str(out_dir))["metrics_gaps"] == [[120, 200]]
  assert _steps(out_dir) == list(range(1, 120)) + list(range(201, 251))
  # A later resume still records the gap, but has no new one to warn of.
  messages = []
  summary = _run(out_dir, messages, resume=True, resume_steps=300)
  assert not [m for m in messages if "metrics.jsonl" in m]
  assert summary["metrics_gaps"] == [[120, 200]]


@pytest.mark.parametrize("steps,through,gaps", [
    ([], 0, []),
    ([1, 2, 3], 3, []),
    ([1, 2, 3], 5, [[4, 5]]),
    ([], 4, [[1, 4]]),
    ([1, 2, 6, 7], 7, [[3, 5]]),
    ([2, 3, 5], 8, [[1, 1], [4, 4], [6, 8]])])
def test_missing_steps_are_the_runs_absent_from_1_to_the_checkpoint(steps, through, gaps):
  assert rundir.missing_steps(steps, through) == gaps


def _out_of_memory_on_call(monkeypatch, call: int):
  """The compiled chunk raises XLA's out-of-memory error on its `call`-th call."""
  real_make_chunk, calls = loop.make_chunk, []

  def make_chunk(*args, **kwargs):
    program = real_make_chunk(*args, **kwargs)

    def run(*program_args):
      calls.append(1)
      if len(calls) == call:
        raise jax.errors.JaxRuntimeError(XLA_OUT_OF_MEMORY)
      return program(*program_args)
    return run
  monkeypatch.setattr(loop, "make_chunk", make_chunk)


def test_out_of_memory_before_any_step_is_one_line_and_leaves_no_directory(
    tmp_path, monkeypatch):
  _out_of_memory_on_call(monkeypatch, 1)
  with pytest.raises(faults.RunFailed) as failed:
    _run(tmp_path / "fresh" / "run", [])
  assert str(failed.value) == (
      "out of memory while compiling and running the training chunk from step 0: "
      "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 68719476736 bytes.; "
      "try a smaller --batch_size, --seeds or --memory_rows")
  assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_out_of_memory_later_keeps_the_run_and_saves_the_last_chunk(tmp_path, monkeypatch):
  _out_of_memory_on_call(monkeypatch, 3)  # checkpoint_every 50: step 100 saved, then fails
  out_dir = tmp_path / "run"
  with pytest.raises(faults.RunFailed) as failed:
    _run(out_dir, [])
  assert str(failed.value).startswith(
      "out of memory while running the training chunk from step 100: RESOURCE_EXHAUSTED")
  assert _steps(out_dir) == list(range(1, 101))
  assert checkpoints.load_run(str(out_dir))[1].step.tolist() == [100, 100]


def test_other_errors_are_not_taken_for_out_of_memory():
  assert faults.is_out_of_memory(jax.errors.JaxRuntimeError(XLA_OUT_OF_MEMORY))
  assert faults.is_out_of_memory(MemoryError())
  assert not faults.is_out_of_memory(jax.errors.JaxRuntimeError("INTERNAL: RESOURCE_EXHAUSTED"))
  assert not faults.is_out_of_memory(ValueError("RESOURCE_EXHAUSTED: not from XLA"))
  with pytest.raises(KeyError):
    with faults.out_of_memory_ends_the_run("testing"):
      raise KeyError("x")


# The command line: the same faults, injected into a fresh process.
_CLI = """
import errno, sys, runpy, jax
fault = sys.argv.pop(1)
if fault.startswith("disk_full"):
  import orbax.checkpoint as ocp
  from orbax.checkpoint._src.path import atomicity
  owner, name = ((ocp.CheckpointManager, "save") if fault == "disk_full" else
                 (atomicity, "on_commit_callback"))  # in orbax's background thread
  real, calls = getattr(owner, name), []
  def failing(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise OSError(errno.ENOSPC, "No space left on device")
    return real(*args, **kwargs)
  setattr(owner, name, failing)
else:
  import ntm_jax.runs.loop as loop
  def make_chunk(*args, **kwargs):
    def run(*args):
      raise jax.errors.JaxRuntimeError({oom!r})
    return run
  loop.make_chunk = make_chunk
sys.argv[0] = "copy"
runpy.run_module("experiments.copy", run_name="__main__")
""".replace("{oom!r}", repr(XLA_OUT_OF_MEMORY))
_CLI_FLAGS = ["--seeds=2", "--steps=100", "--batch_size=2", "--max_length=3",
              "--eval_every=50", "--test_lengths=2,6", "--test_memory_size=16",
              "--controller_size=8", "--memory_rows=8", "--memory_width=4",
              "--checkpoint_every=50", "--noplots", "--wandb=off", "--noprogress"]


@pytest.mark.slow
@pytest.mark.parametrize("fault,start", [
    ("disk_full", "error: no space left on device while saving step 100 to "),
    ("disk_full_while_finalising", "error: no space left on device while saving step 100 to "),
    ("out_of_memory", "error: out of memory while compiling and running the training chunk "
                      "from step 0: RESOURCE_EXHAUSTED: Out of memory")])
def test_the_cli_ends_a_failed_run_in_one_line_and_exit_code_1(tmp_path, fault, start):
  out_dir = tmp_path / "fresh" / "run"
  result = run_python("-c", _CLI, fault, *_CLI_FLAGS, f"--out_dir={out_dir}", timeout=600,
                      env={"WANDB_MODE": None})
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1, result.stderr[-3000:]
  assert len(lines) == 1 and lines[0].startswith(start), result.stderr[-3000:]
  assert "Traceback" not in result.stdout + result.stderr
  if fault.startswith("disk_full"):
    assert "continue from step 50 with --resume once there is room" in lines[0]
    assert [n for n in os.listdir(out_dir / "checkpoints") if n.isdigit()] == ["50"]
  else:
    assert not (tmp_path / "fresh").exists()
