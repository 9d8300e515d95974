"""Who may write a run directory, and how a signal stops a run cleanly.

One run owns `<out_dir>` at a time: `claim` takes an exclusive `flock` on
`<out_dir>/.lock` for the life of the run. The OS drops the lock when the
owning process dies however it dies (crash, SIGKILL, power loss of a local
disk), so a lock left behind by a dead run never needs cleaning up; the pid
and host written into the file only name the owner in the refusal.

`StopOnSignal` turns SIGTERM / SIGINT into a request the run loop honours
between compiled chunks; the engine then saves a checkpoint and raises
`RunInterrupted`, which the command line turns into one line and the exit
code a shell expects (128 + signal number).
"""
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import threading
from typing import Optional

import ntm_jax.runs.checkpoints as checkpoints
import ntm_jax.runs.rundir as rundir

# What a run writes into its directory: what --overwrite clears. Anything
# else the user put there stays.
RUN_FILES = ("config.json", "config.json.tmp", "metrics.jsonl", "summary.json",
             "summary.json.tmp", "checkpoints", "plots")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(Exception):
  """A run stopped by SIGTERM / SIGINT after saving its latest state.

  Attributes:
    signum: the signal that stopped it.
    step: the step of the checkpoint it saved (None if it had none to save).
    out_dir: the run directory, to continue with resume=True.
    exit_code: what a command line should exit with (143 SIGTERM, 130 SIGINT).
  """

  def __init__(self, signum: int, step: Optional[int], out_dir: str):
    self.signum, self.step, self.out_dir = signum, step, out_dir
    self.exit_code = 128 + signum
    super().__init__(signum, step, out_dir)

  def __str__(self) -> str:
    return f"stopped at step {self.step}; continue with --resume --out_dir {self.out_dir}"


def holds_run(out_dir: str) -> bool:
  """Whether out_dir holds a run, finished or not (a config.json or checkpoints)."""
  return os.path.exists(rundir.config_path(out_dir)) or checkpoints.has_checkpoints(out_dir)


class DirectoryLock:
  """An exclusive flock on `<out_dir>/.lock`, released by `release` or by
  the death of this process. Raises ValueError (one line) if another live
  process holds it."""

  def __init__(self, out_dir: str):
    os.makedirs(out_dir, exist_ok=True)
    self.fd = os.open(os.path.join(out_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    owner = _lock_or_owner(self.fd)
    if owner is not None:
      os.close(self.fd)
      raise ValueError(f"{out_dir} is in use by another run ({owner})")
    os.ftruncate(self.fd, 0)
    os.write(self.fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.release()

  def release(self) -> None:
    if self.fd is not None:
      os.ftruncate(self.fd, 0)
      fcntl.flock(self.fd, fcntl.LOCK_UN)
      os.close(self.fd)
      self.fd = None


def _lock_or_owner(fd: int) -> Optional[str]:
  """Locks fd and returns None, or returns "pid N on HOST" of the holder."""
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    return os.read(fd, 256).decode(errors="replace").strip() or "owner unknown"
  return None


def check(out_dir: str, resume: bool, overwrite: bool) -> None:
  """Raises ValueError (one line) if `claim` would refuse out_dir now; a
  look only, that writes nothing (`claim` decides, under the lock).

  Raises:
    ValueError: out_dir is in use by a live run, or holds a run and neither
      resume nor overwrite was asked for.
  """
  try:
    fd = os.open(os.path.join(out_dir, ".lock"), os.O_RDONLY)
  except (FileNotFoundError, NotADirectoryError):  # no run; a bad path is refused later
    fd = None
  if fd is not None:
    owner = _lock_or_owner(fd)
    os.close(fd)  # closing drops a lock taken by the look
    if owner is not None:
      raise ValueError(f"{out_dir} is in use by another run ({owner})")
  _refuse_a_held_run(out_dir, resume, overwrite)


def _refuse_a_held_run(out_dir: str, resume: bool, overwrite: bool) -> None:
  if not (resume or overwrite) and holds_run(out_dir):
    raise ValueError(f"{out_dir} already holds a run: pass resume=True (--resume) to "
                     "continue it, overwrite=True (--overwrite) to replace it, or "
                     "choose another out_dir")


def claim(out_dir: str, resume: bool, overwrite: bool, main: bool):
  """Locks out_dir for this run and checks it may be written; overwrite
  clears an old run's files. Returns a context manager releasing the lock.

  Only the main process locks and decides (the others share its files);
  in a multi-process run every process learns the main process's verdict,
  so none is left waiting in a collective for one that gave up.

  Raises:
    ValueError: out_dir is in use, or holds a run and neither resume nor
      overwrite was asked for. Nothing in out_dir has changed.
  """
  if resume and overwrite:
    raise ValueError("resume and overwrite exclude each other")
  lock, refusal = None, None
  if main:
    try:
      lock = DirectoryLock(out_dir)
      _refuse_a_held_run(out_dir, resume, overwrite)
      if overwrite:
        for name in RUN_FILES:
          path = os.path.join(out_dir, name)
          if os.path.isdir(path):
            shutil.rmtree(path)
          elif os.path.exists(path):
            os.remove(path)
    except ValueError as error:
      refusal = error
      if lock is not None:
        lock.release()
  if _all_processes_agree(refusal is None):
    return lock if lock is not None else contextlib.nullcontext()
  raise refusal or ValueError(f"the main process refused {out_dir}")


def missing_root(out_dir: str) -> Optional[str]:
  """The outermost folder of out_dir's path that does not exist yet (what a
  run into out_dir creates), or None when out_dir exists."""
  path, root = os.path.abspath(out_dir), None
  while not os.path.exists(path):
    path, root = os.path.dirname(path), path
  return root


def _untrained(out_dir: str) -> bool:
  """Whether out_dir holds nothing a run trained: at most its lock, its
  config.json, an empty metrics.jsonl and an empty checkpoints/."""
  for name in os.listdir(out_dir):
    path = os.path.join(out_dir, name)
    empty = (os.listdir(path) == [] if os.path.isdir(path) else os.path.getsize(path) == 0)
    if not (name in (".lock", "config.json", "config.json.tmp")
            or (name in ("metrics.jsonl", "checkpoints") and empty)):
      return False
  return True


def remove_if_untrained(out_dir: str, created: Optional[str]) -> bool:
  """Removes out_dir, and the folders above it up to `created` (what
  `missing_root` said before the run), if this run created it and trained
  nothing into it: a failed run leaves no half-made directory. Whether it did.
  """
  if created is None or not os.path.isdir(out_dir) or not _untrained(out_dir):
    return False
  shutil.rmtree(out_dir)
  path = os.path.abspath(out_dir)
  while path != created and path.startswith(created + os.sep):
    path = os.path.dirname(path)
    try:
      os.rmdir(path)  # only while empty: nothing of anyone else's goes
    except OSError:
      break
  return True


def _all_processes_agree(ok: bool) -> bool:
  """The main process's `ok`, on every process."""
  import jax
  if jax.process_count() == 1:
    return ok
  import numpy as np
  from jax.experimental import multihost_utils
  return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


class StopOnSignal:
  """While active, SIGTERM and SIGINT ask the run loop to stop after its
  current chunk instead of killing the process; a second signal stops at
  once (raising RunInterrupted with step None, which the engine fills in).
  The previous handlers come back on exit. Off the main thread Python
  allows no handlers: then signals keep their usual effect.

      with StopOnSignal(log, out_dir) as stop:
        while ...:
          ...one chunk...
          if stop.requested():
            break
  """

  def __init__(self, log, out_dir: str):
    self.log, self.out_dir = log, out_dir
    self.signum, self.previous = None, {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self.previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self.previous.items():
      signal.signal(s, handler)
    self.previous = {}

  def _handle(self, signum, frame) -> None:
    if self.signum is not None:
      raise RunInterrupted(signum, None, self.out_dir)
    self.signum = signum
    self.log(f"{signal.Signals(signum).name}: stopping after the current chunk "
             "(send it again to stop at once)")

  def requested(self) -> Optional[int]:
    """The signal asking to stop, or None. A collective in a multi-process
    run (every process stops at the same chunk)."""
    import jax
    if jax.process_count() == 1:
      return self.signum
    import numpy as np
    from jax.experimental import multihost_utils
    signums = multihost_utils.process_allgather(np.int32(self.signum or 0))
    return int(np.max(signums)) or None
