"""Where a run came from: the code, the software, the machine and the command.

Recorded in config.json under "provenance" (`config_json`), beside the
settings; `ExperimentConfig.from_json` reads only the settings, so a run
directory still loads anywhere. A resumed run records its own provenance and
keeps the earlier ones, oldest first, under "provenance"["earlier"].
"""
import os
import platform
import socket
import subprocess
import sys
from typing import Optional

import ntm_jax.runs.rundir as rundir


def _git(root: str, *args) -> Optional[str]:
  """git's stdout in `root`, or None (no git, not a checkout, or too slow)."""
  try:
    done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                          timeout=10)
  except (OSError, subprocess.SubprocessError):
    return None
  return done.stdout.strip() if done.returncode == 0 else None


def git_state(root: str) -> Optional[dict]:
  """{"commit", "dirty"} when `root` is the top of a git checkout, else None.

  Only the checkout whose top is `root` counts: an installed package inside
  some other repository (a virtualenv in a project) has no commit of its own.
  dirty: tracked files differ from the commit (untracked files do not count).
  """
  top = _git(root, "rev-parse", "--show-toplevel")
  if top is None or os.path.realpath(top) != os.path.realpath(root):
    return None
  commit = _git(root, "rev-parse", "HEAD")
  if commit is None:
    return None
  changes = _git(root, "status", "--porcelain", "--untracked-files=no")
  return {"commit": commit, "dirty": None if changes is None else bool(changes)}


def cpu_model() -> str:
  """The CPU's model name (Linux /proc/cpuinfo), else platform.processor()."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


# The CPU features XLA's CPU compiler picks its vector code by: two CPUs with
# the same model name can differ in them, and their runs then round apart.
_VECTOR_FEATURE_PREFIXES = ("sse4", "avx", "fma", "amx", "f16c")


def cpu_vector_features(cpuinfo: str = "/proc/cpuinfo") -> list:
  """The sorted vector-instruction flags of the first CPU in `cpuinfo`
  (Linux's flags line, or Features on ARM); [] where it cannot be read."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith(("flags", "Features")):
          return sorted(flag for flag in line.split(":", 1)[1].split()
                        if flag.startswith(_VECTOR_FEATURE_PREFIXES)
                        or flag in ("asimd", "sve", "sve2"))
  except OSError:
    pass
  return []


def collect(devices: int, seeds_per_group: int) -> dict:
  """This process's provenance.

  Args:
    devices: devices sharing the seeds (the run's mesh size).
    seeds_per_group: seeds trained at a time on each device
      (`ntm_jax.training.layout.seeds_per_group`).
  """
  import jax
  import jaxlib
  import ntm_jax
  root = os.path.dirname(os.path.dirname(os.path.abspath(ntm_jax.__file__)))
  return {
      "ntm_jax_version": ntm_jax.__version__,
      "git": git_state(root),
      "jax_version": jax.__version__,
      "jaxlib_version": jaxlib.__version__,
      "backend": jax.default_backend(),
      "devices": devices,
      "device_count": jax.device_count(),
      "process_count": jax.process_count(),
      "seeds_per_group": seeds_per_group,
      "python_version": platform.python_version(),
      "executable": sys.executable,
      "argv": list(sys.argv),
      "hostname": socket.gethostname(),
      # A seed's trajectory depends on rounding, so on these too (RESULTS.md,
      # "Rounding decides which seeds generalise").
      "cpu": cpu_model(),
      "cpu_vector_features": cpu_vector_features(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def config_json(config, out_dir: str, devices: int, seeds_per_group: int) -> dict:
  """config.json's content: `config.to_json()` plus "provenance"; a
  config.json already in out_dir (a resumed run) gives its provenance, and
  the ones before it, to "earlier"."""
  current = collect(devices, seeds_per_group)
  path = rundir.config_path(out_dir)
  if os.path.exists(path):
    try:
      before = rundir.load_json(path).get("provenance")
    except (ValueError, AttributeError):
      before = None
    if isinstance(before, dict):
      current["earlier"] = before.pop("earlier", []) + [before]
  return {**config.to_json(), "provenance": current}
