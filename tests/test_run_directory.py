"""A run directory nobody can corrupt: one owner at a time, resume changes
nothing until its restore worked, an unreadable checkpoint falls back to the
previous one, and SIGTERM / SIGINT stop a run with a checkpoint to resume.

The uninterrupted reference is conftest's shared `tiny_run` (read-only: the
tests here copy it before touching it).
"""
import dataclasses
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import ntm_jax.runs.checkpoints as checkpoints
import ntm_jax.runs.engine as engine
import ntm_jax.runs.ownership as ownership
import ntm_jax.runs.rundir as rundir
import ntm_jax.training as training

from conftest import ROOT, TINY_EXPERIMENT as CONFIG
from conftest import run_python

# experiments.copy flags for a run as small as CONFIG (the copy task's own
# 8 bits; the CLI's XLA settings differ from this process's, so CLI runs are
# compared with CLI runs only).
CLI_FLAGS = ["--seeds=2", "--steps=200", "--batch_size=2", "--max_length=3",
             "--eval_every=50", "--test_lengths=2,6", "--test_memory_size=16",
             "--controller_size=16", "--memory_rows=8", "--memory_width=4",
             "--checkpoint_every=50", "--noplots", "--wandb=off", "--noprogress"]


def _run(config, out_dir, **kwargs):
  kwargs.setdefault("log", lambda _: None)
  return engine.run(config, str(out_dir), progress=False, **kwargs)


def _snapshot(out_dir, skip=()):
  """Every file under out_dir: relative path -> bytes. Top-level directories
  named in skip are not entered (a live run's async checkpoint save creates and
  deletes files there while we walk)."""
  files = {}
  for root, dirs, names in os.walk(out_dir):
    if os.path.samefile(root, out_dir):
      dirs[:] = [d for d in dirs if d not in skip]
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        files[os.path.relpath(path, out_dir)] = f.read()
  return files


def _lines(out_dir, name="metrics.jsonl"):
  with open(os.path.join(out_dir, name)) as f:
    return f.read().splitlines()


def _steps(out_dir):
  return sorted(int(n) for n in os.listdir(os.path.join(out_dir, "checkpoints")) if n.isdigit())


def _assert_same_states(dir_a, dir_b):
  """Bit-identical params, best params, optimizer state and bookkeeping."""
  (_, a), (_, b) = checkpoints.load_run(str(dir_a)), checkpoints.load_run(str(dir_b))
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)


def _without_timing(summary):
  return {k: v for k, v in summary.items() if k not in ("timing", "plots")}


def _copy(tiny_run_dir, tmp_path):
  out_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, out_dir, ignore=shutil.ignore_patterns("plots", ".lock"))
  return out_dir


def _on_chunk_call(monkeypatch, n, action):
  """Patch the engine to call action() just before its n-th compiled chunk."""
  real = training.make_seed_parallel

  def patched(fn, mesh=None, **kwargs):
    compiled, calls = real(fn, mesh, **kwargs), []

    def call(*args):
      calls.append(None)
      if len(calls) == n:
        action()
      return compiled(*args)
    return call

  monkeypatch.setattr(training, "make_seed_parallel", patched)


def _corrupt(checkpoint_dir):
  """Garble the biggest array file of one orbax checkpoint."""
  files = glob.glob(os.path.join(checkpoint_dir, "default", "ocdbt.process_0", "d", "*"))
  path = max(files, key=os.path.getsize)
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    data[100::7] = bytes(b ^ 0x5A for b in data[100::7])
    f.seek(0)
    f.write(data)


# One owner ---------------------------------------------------------------------


def test_a_held_lock_refuses_a_second_owner_naming_the_first(tmp_path):
  with ownership.DirectoryLock(str(tmp_path)):
    with pytest.raises(ValueError) as refused:
      ownership.DirectoryLock(str(tmp_path))
  assert str(refused.value) == (f"{tmp_path} is in use by another run "
                                f"(pid {os.getpid()} on {socket.gethostname()})")
  ownership.DirectoryLock(str(tmp_path)).release()  # released: free again


def test_the_look_before_a_run_sees_the_owner_and_writes_nothing(tiny_run_dir, tmp_path):
  fresh = tmp_path / "fresh"
  ownership.check(str(fresh), resume=False, overwrite=False)
  assert not fresh.exists()
  with pytest.raises(ValueError, match="already holds a run"):
    ownership.check(tiny_run_dir, resume=False, overwrite=False)
  ownership.check(tiny_run_dir, resume=True, overwrite=False)
  with ownership.DirectoryLock(str(tmp_path)):
    with pytest.raises(ValueError, match=f"in use by another run \\(pid {os.getpid()} "):
      ownership.check(str(tmp_path), resume=True, overwrite=False)
  ownership.check(str(tmp_path), resume=False, overwrite=False)  # free again


def test_the_run_still_owns_its_directory_while_the_plots_are_drawn(tiny_run_dir, tmp_path):
  run_dir = _copy(tiny_run_dir, tmp_path)
  seen = []

  def finish(out_dir, summary):
    with pytest.raises(ValueError, match="in use by another run"):
      ownership.DirectoryLock(out_dir)
    seen.append(summary["aggregate"]["seeds"])

  _run(CONFIG, run_dir, resume=True, finish=finish)  # finished already: tests only
  assert seen == [CONFIG.train.seeds]
  ownership.DirectoryLock(run_dir).release()  # and free once run returns


@pytest.mark.slow
def test_a_lock_dies_with_its_process(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, ntm_jax.runs.ownership as o; "
       f"o.DirectoryLock({str(tmp_path)!r}); print('locked', flush=True); sys.stdin.read()"],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdin=subprocess.PIPE,
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(ValueError, match=f"in use by another run \\(pid {holder.pid} on "):
      ownership.DirectoryLock(str(tmp_path))
  finally:
    holder.kill()  # SIGKILL: no cleanup of any kind runs in the holder
    holder.wait()
  ownership.DirectoryLock(str(tmp_path)).release()


def test_a_run_killed_before_its_first_checkpoint_is_not_silently_replaced(
    tiny_run_dir, tmp_path):
  out_dir = tmp_path / "run"
  out_dir.mkdir()
  shutil.copy(os.path.join(tiny_run_dir, "config.json"), out_dir)
  with open(out_dir / "metrics.jsonl", "w") as f:
    f.write("\n".join(_lines(tiny_run_dir)[:30]) + "\n")
  before = _snapshot(out_dir)
  with pytest.raises(ValueError, match="already holds a run.*--resume.*--overwrite"):
    _run(CONFIG, out_dir)
  with pytest.raises(ValueError, match="exclude each other"):
    _run(CONFIG, out_dir, resume=True, overwrite=True)
  after = _snapshot(out_dir)
  assert after.pop(".lock") == b""  # the refused run let go of its lock
  assert after == before


@pytest.mark.slow
def test_a_second_run_into_a_live_directory_is_refused_and_changes_nothing(
    tiny_run_dir, tmp_path, monkeypatch):
  out_dir = tmp_path / "run"
  seen = {}

  def files():  # not checkpoints/: the first run's own async save may still be writing
    return _snapshot(out_dir, skip=("checkpoints",))

  def second_run():  # while the first run is between its chunks 1 and 2
    seen["before"] = files()
    seen["result"] = run_python("-m", "experiments.copy", *CLI_FLAGS,
                                f"--out_dir={out_dir}", timeout=120)
    seen["after"] = files()

  _on_chunk_call(monkeypatch, 2, second_run)
  summary = _run(CONFIG, out_dir)
  result = seen["result"]
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f"error: {out_dir} is in use by another run (pid {os.getpid()} on "
      f"{socket.gethostname()})"]
  assert result.stdout == ""
  assert seen["after"] == seen["before"]
  # The first run went on as if alone.
  assert _lines(out_dir) == _lines(tiny_run_dir)
  _assert_same_states(out_dir, tiny_run_dir)
  assert summary["seeds"] == rundir.load_summary(tiny_run_dir)["seeds"]


@pytest.mark.slow
def test_overwrite_replaces_an_old_run_and_keeps_other_files(tiny_run_dir, tmp_path):
  out_dir = _copy(tiny_run_dir, tmp_path)
  (out_dir / "notes.txt").write_text("mine")
  with open(out_dir / "metrics.jsonl", "a") as f:
    f.write('{"step": 201, "loss": [0.0, 0.0]}\n')
  _run(CONFIG, out_dir, overwrite=True)
  assert _lines(out_dir) == _lines(tiny_run_dir)
  assert _steps(out_dir) == [150, 200]
  _assert_same_states(out_dir, tiny_run_dir)
  assert (out_dir / "notes.txt").read_text() == "mine"


# Resume changes nothing until it has worked ------------------------------------


def test_a_refused_resume_with_fewer_steps_leaves_the_directory_as_it_was(
    tiny_run_dir, tmp_path):
  out_dir = _copy(tiny_run_dir, tmp_path)
  before = _snapshot(out_dir)
  with pytest.raises(ValueError, match=r"steps 100 is below the step of the checkpoint "
                                       r"to resume from \(200\)"):
    _run(CONFIG, out_dir, resume=True, resume_steps=100)
  after = _snapshot(out_dir)
  after.pop(".lock")
  assert after == before  # config.json and metrics.jsonl byte for byte


@pytest.mark.slow
def test_the_cli_refuses_resume_steps_below_the_checkpoint_in_one_line(
    tiny_run_dir, tmp_path):
  out_dir = _copy(tiny_run_dir, tmp_path)
  before = _snapshot(out_dir)
  result = run_python("-m", "experiments.copy", "--resume", "--steps=100",
                      f"--out_dir={out_dir}", "--wandb=off", "--noprogress", timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      "error: steps 100 is below the step of the checkpoint to resume from (200)"]
  after = _snapshot(out_dir)
  after.pop(".lock")
  assert after == before


def test_no_usable_checkpoint_is_one_line_and_changes_nothing(tiny_run_dir, tmp_path):
  out_dir = _copy(tiny_run_dir, tmp_path)
  for step in (150, 200):
    _corrupt(out_dir / "checkpoints" / str(step))
  before = _snapshot(out_dir)
  messages = []
  with pytest.raises(checkpoints.CheckpointError) as refused:
    _run(CONFIG, out_dir, resume=True, log=messages.append)
  text = str(refused.value)
  assert "\n" not in text and text.startswith("no usable checkpoint in ")
  assert "step 200: " in text and "step 150: " in text
  assert isinstance(refused.value, ValueError)  # the CLI's one-line "error: ..."
  warnings = [m for m in messages if m.startswith("warning:")]
  assert len(warnings) == 1 and warnings[0].endswith("falling back to step 150")
  after = _snapshot(out_dir)
  after.pop(".lock")
  assert after == before


@pytest.mark.slow
def test_an_unreadable_latest_checkpoint_falls_back_to_the_previous_one(
    tiny_run_dir, tmp_path):
  out_dir = _copy(tiny_run_dir, tmp_path)
  _corrupt(out_dir / "checkpoints" / "200")
  messages = []
  summary = _run(CONFIG, out_dir, resume=True, log=messages.append)
  warnings = [m for m in messages if m.startswith("warning:")]
  assert len(warnings) == 1 and "step 200" in warnings[0]
  assert warnings[0].endswith("falling back to step 150")
  assert "resumed from step 150" in messages
  assert summary["timing"]["steps_run"] == 50
  # metrics.jsonl was cut back to step 150 and retrained to the same rows.
  assert _lines(out_dir) == _lines(tiny_run_dir)
  _assert_same_states(out_dir, tiny_run_dir)


@pytest.mark.slow
def test_a_checkpoint_from_another_device_count_is_relaid_onto_this_padding(tmp_path):
  """Seeds 0-1 are real; a 2-device run stored 4 (2 padding), a 3-device run
  would store 3: either restores here with the real seeds intact."""
  train = dataclasses.replace(CONFIG.train, seeds=2)
  saved = training.init_states(CONFIG.model, train, 4)
  saved = saved.replace(step=saved.step + np.arange(4, dtype=np.int32) + 7)
  manager = checkpoints.manager(str(tmp_path))
  checkpoints.save(manager, 50, saved)
  manager.wait_until_finished()
  for padded in (2, 3, 4):
    fresh = training.init_states(CONFIG.model, train, padded)
    messages = []
    step, states = checkpoints.restore(manager, fresh, 2, messages.append)
    assert step == 50
    assert np.asarray(states.step).tolist() == [7, 8] + ([0] * (padded - 2) if padded != 4
                                                         else [9, 10])
    for got, want, new in zip(jax.tree_util.tree_leaves(states),
                              jax.tree_util.tree_leaves(saved),
                              jax.tree_util.tree_leaves(fresh)):
      assert np.shape(got)[0] == padded
      np.testing.assert_array_equal(np.asarray(got)[:2], np.asarray(want)[:2])
      padding = want if padded == 4 else new  # same padding: nothing to re-lay
      np.testing.assert_array_equal(np.asarray(got)[2:], np.asarray(padding)[2:padded])
    assert len(messages) == (padded != 4)
  with pytest.raises(checkpoints.CheckpointError, match="holds 4 seeds, fewer than the 5"):
    checkpoints.restore(manager, training.init_states(CONFIG.model, train, 5), 5)
  manager.close()


# Signals -----------------------------------------------------------------------


def test_stop_on_signal_asks_once_stops_at_the_second_and_restores_handlers(tmp_path):
  previous = signal.getsignal(signal.SIGTERM)
  # Python's default, or SIG_IGN in a process started in the background
  # (`nohup ... &` from a script): whichever it was comes back.
  previous_int = signal.getsignal(signal.SIGINT)
  messages = []
  with ownership.StopOnSignal(messages.append, str(tmp_path)) as stop:
    assert stop.requested() is None
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.requested() == signal.SIGINT
    with pytest.raises(ownership.RunInterrupted) as at_once:
      os.kill(os.getpid(), signal.SIGTERM)
  assert signal.getsignal(signal.SIGTERM) is previous
  assert signal.getsignal(signal.SIGINT) is previous_int
  assert len(messages) == 1 and messages[0].startswith("SIGINT: stopping after")
  assert at_once.value.exit_code == 143
  assert ownership.RunInterrupted(signal.SIGINT, 5, "d").exit_code == 130
  assert str(ownership.RunInterrupted(signal.SIGTERM, 150, "runs/x")) == (
      "stopped at step 150; continue with --resume --out_dir runs/x")


@pytest.mark.slow
def test_sigterm_mid_run_then_resume_matches_an_uninterrupted_run(
    tiny_run, tmp_path, monkeypatch):
  out_dir = tmp_path / "run"
  previous = signal.getsignal(signal.SIGTERM)
  _on_chunk_call(monkeypatch, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
  with pytest.raises(engine.RunInterrupted) as stopped:
    _run(CONFIG, out_dir)
  monkeypatch.undo()
  assert signal.getsignal(signal.SIGTERM) is previous
  # The chunk under way when the signal came (steps 51-100) was finished.
  assert (stopped.value.step, stopped.value.exit_code) == (100, 143)
  assert _steps(out_dir)[-1] == 100
  assert not os.path.exists(out_dir / "summary.json")
  assert _lines(out_dir) == _lines(tiny_run.out_dir)[:100]

  summary = _run(CONFIG, out_dir, resume=True)
  assert summary["timing"]["steps_run"] == 100
  assert _lines(out_dir) == _lines(tiny_run.out_dir)
  _assert_same_states(out_dir, tiny_run.out_dir)
  assert _without_timing(summary) == _without_timing(tiny_run.summary)


_SELF_SIGTERM = """
import os, runpy, signal, sys
import ntm_jax.training as training
real = training.make_seed_parallel
def make(fn, mesh=None, **kwargs):
  compiled, calls = real(fn, mesh, **kwargs), []
  def call(*args):
    calls.append(None)
    if len(calls) == 2:
      os.kill(os.getpid(), signal.SIGTERM)
    return compiled(*args)
  return call
training.make_seed_parallel = make
sys.argv = ["copy"] + sys.argv[1:]
runpy.run_module("experiments.copy", run_name="__main__")
"""


@pytest.mark.slow
def test_the_cli_stops_on_sigterm_with_one_line_and_resumes_on_fewer_devices(tmp_path):
  out_dir = tmp_path / "run"
  # 3 seeds on 2 devices: 1 padding seed stored in the checkpoint.
  stopped = run_python("-c", _SELF_SIGTERM, *CLI_FLAGS, "--seeds=3",
                       f"--out_dir={out_dir}", devices=2)
  assert stopped.returncode == 143, stopped.stderr[-3000:]
  assert stopped.stderr.strip().splitlines() == [
      f"stopped at step 100; continue with --resume --out_dir {out_dir}"]
  assert _steps(out_dir)[-1] == 100
  _, at_stop = checkpoints.load_run(str(out_dir), keep_padding=True)
  assert at_stop.step.tolist() == [100] * 8  # 3 seeds padded to 2 devices x groups of 4

  resumed = run_python("-m", "experiments.copy", "--resume", f"--out_dir={out_dir}",
                       "--wandb=off", "--noprogress", devices=1)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resumed from step 100" in resumed.stdout
  assert "the checkpoint holds 3 seeds + 5 padding; re-laid onto 1 padding" in resumed.stdout
  assert [json.loads(line)["step"] for line in _lines(out_dir)] == list(range(1, 201))
  _, at_end = checkpoints.load_run(str(out_dir), keep_padding=True)
  # The real seeds trained on; the fresh padding seed only since the resume.
  assert at_end.step.tolist() == [200, 200, 200, 100]
