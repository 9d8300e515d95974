"""The failures that end a run once it has started, each said in one line.

`RunFailed` is what the engine raises when training cannot go on (a
checkpoint that could not be saved, memory XLA could not get); the command
line prints it as one "error: ..." line and exits 1. What was saved before
the failure stays on disk, so the run can continue with --resume. Pure
functions only: the message of each failure, and whether an error is one.
"""
import contextlib
import errno
import os
from typing import Optional

# Causes of a failed save that only more room fixes.
_FULL = (errno.ENOSPC, errno.EDQUOT)
# What the smaller run a failed allocation needs is asked for with.
_SMALLER = "try a smaller --batch_size, --seeds or --memory_rows"


class RunFailed(RuntimeError):
  """A started run that cannot go on, in one line (its str); the command line
  prints "error: <it>" and exits 1."""


class SaveFailed(RunFailed):
  """A checkpoint save that failed; the earlier checkpoints are intact."""


def one_line(error: BaseException) -> str:
  """The first line of an error, without TensorStore's spec dump."""
  text = str(error).strip()
  text = text.splitlines()[0] if text else type(error).__name__
  return text.split(" See full TensorStore details")[0][:200]


def _os_error(error: BaseException) -> Optional[OSError]:
  """The first OSError with an errno in error's chain of causes (orbax and
  TensorStore may wrap the one the file system raised)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno is not None:
      return error
    error = error.__cause__ or error.__context__
  return None


def save_cause(error: BaseException) -> tuple:
  """(what went wrong, in lower case words, whether more room fixes it)."""
  os_error = _os_error(error)
  if os_error is not None:
    return os.strerror(os_error.errno).lower(), os_error.errno in _FULL
  text = one_line(error)
  if "no space left on device" in text.lower():  # TensorStore says it in words
    return "no space left on device", True
  if text.startswith("RESOURCE_EXHAUSTED") and "writing" in text.lower():
    # TensorStore's code for a write the file system refused for room (a
    # full disk or quota); its message names the file but not the errno.
    return "no space left on device (the storage refused a write: RESOURCE_EXHAUSTED)", True
  return text, False


def save_failed(error: BaseException, step: int, directory: str,
                previous_step: Optional[int]) -> SaveFailed:
  """The one-line failure of saving `step` into `directory`, naming where a
  resume starts (`previous_step`: the latest complete checkpoint, or None)."""
  cause, full = save_cause(error)
  remedy = "once there is room" if full else "once that is fixed"
  resume = (f"the run can continue from step {previous_step} with --resume {remedy}"
            if previous_step is not None else
            f"no earlier checkpoint exists, so --resume starts again from step 0 {remedy}")
  return SaveFailed(f"{cause} while saving step {step} to {directory}; {resume}")


def is_out_of_memory(error: BaseException) -> bool:
  """Whether `error` is XLA (or the host) failing to allocate memory."""
  if isinstance(error, MemoryError):
    return True
  return isinstance(error, RuntimeError) and one_line(error).startswith("RESOURCE_EXHAUSTED")


def out_of_memory(error: BaseException, during: str) -> RunFailed:
  """The one-line failure of an allocation while `during` ("compiling ...")."""
  return RunFailed(f"out of memory while {during}: {one_line(error)}; {_SMALLER}")


@contextlib.contextmanager
def out_of_memory_ends_the_run(during: str):
  """Turns an allocation failure inside into `out_of_memory`'s RunFailed
  (XLA's own message runs to many lines); other errors pass unchanged."""
  try:
    yield
  except Exception as error:
    if is_out_of_memory(error):
      raise out_of_memory(error, during) from None
    raise
