"""Shared test setup: strict numpy rank promotion, a fast hypothesis profile,
tiny configs, one tiny trained run shared by every module, a helper to run
Python in a subprocess, and one to load an experiment's flags in this one.

Tiers: `python -m pytest -m "not slow" tests` is the fast tier; tests marked
`slow` (pyproject.toml registers the marker: subprocesses, training runs of
their own) run in the full suite.
"""
import os
import subprocess
import sys

import jax
import pytest
from hypothesis import HealthCheck, settings

from ntm_jax.config import ExperimentConfig, NTMConfig, TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Implicit rank promotion ([N] + [H, N]) hides shape bugs; make it an error.
jax.config.update("jax_numpy_rank_promotion", "raise")
# The suite runs many tiny programs once each: XLA compile time dominates and
# its optimisation passes buy nothing here (about 1.6x faster end to end).
# The math is unchanged (no fast-math either way); only scheduling/fusion differ.
jax.config.update("jax_disable_most_optimizations", True)
# The same for the experiments the tests start as subprocesses.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "true")

settings.register_profile(
    "ntm",
    max_examples=25,
    deadline=None,  # the first example of a new shape pays for XLA compilation
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ntm")


# Tiny configurations ----------------------------------------------------------

# A copy NTM for CopyTask(bits=3): 4 inputs (3 bits + delimiter), 3 outputs.
TINY_NTM = NTMConfig(input_size=4, output_size=3, controller_size=16, memory_rows=8,
                     memory_width=4)
# 2 seeds, 4 chunks of 50 steps: enough for checkpoints to rotate (the latest
# two are kept) and for a resume to start mid-run.
TINY_TRAIN = TrainConfig(seeds=2, steps=200, batch_size=2, max_length=3, eval_every=50,
                         test_lengths=(2, 6), test_memory_size=16)
TINY_EXPERIMENT = ExperimentConfig(task="copy", task_options=(("bits", 3),), model=TINY_NTM,
                                   train=TINY_TRAIN, checkpoint_every=50)


@pytest.fixture
def tiny_ntm():
  return TINY_NTM


@pytest.fixture
def tiny_train():
  return TINY_TRAIN


@pytest.fixture
def tiny_experiment():
  return TINY_EXPERIMENT


# One tiny trained run, shared ---------------------------------------------------


class RecordingLogger:
  """A run logger (`ntm_jax.runs.loggers`) that records every call."""

  def __init__(self):
    self.calls = []

  def start(self, config, out_dir):
    self.calls.append(("start", config, out_dir))

  def log_chunk(self, step, aggregate, per_seed):
    self.calls.append(("log_chunk", step, aggregate, per_seed))

  def finish(self, summary):
    self.calls.append(("finish", summary))


class FailsMidRun(RecordingLogger):
  """Fine at start, raises at its first chunk."""

  def log_chunk(self, step, aggregate, per_seed):
    super().log_chunk(step, aggregate, per_seed)
    raise ConnectionError("W&B backend went away")


class TinyRun:
  """What training TINY_EXPERIMENT once left behind.

  Attributes:
    out_dir: the run directory (str), with its plots drawn.
    summary: what engine.run returned (plus the plot paths draw_plots added).
    recorder: a RecordingLogger that saw the whole run.
    failing: a FailsMidRun logger, dropped after its first chunk.
    messages: the one-line messages the engine logged.
  """

  def __init__(self, out_dir, summary, recorder, failing, messages):
    self.out_dir, self.summary = out_dir, summary
    self.recorder, self.failing, self.messages = recorder, failing, messages


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """TINY_EXPERIMENT trained once for the whole session. Read it, never
  write into it: copy it first (shutil.copytree) to draw or resume.

  A logger fails mid-run on purpose: every test reading this run checks too
  that such a failure costs nothing."""
  from ntm_jax import api
  from ntm_jax.runs import engine
  out_dir = str(tmp_path_factory.mktemp("tiny_run") / "run")
  recorder, failing, messages = RecordingLogger(), FailsMidRun(), []
  summary = engine.run(TINY_EXPERIMENT, out_dir, progress=False, log=messages.append,
                       loggers=[failing, recorder])
  api.draw_plots(out_dir, summary, log=messages.append)
  return TinyRun(out_dir, summary, recorder, failing, messages)


@pytest.fixture(scope="session")
def tiny_run_dir(tiny_run):
  """The shared tiny run's directory (str); read-only, see `tiny_run`."""
  return tiny_run.out_dir


# Subprocesses -------------------------------------------------------------------


def run_python(*args, env=None, cwd=None, timeout=300, devices=None):
  """`python *args` in a fresh process, on the CPU, importing this checkout.

  Args:
    *args: the interpreter's arguments ("-m", "experiments.copy", ...).
    env: variables to set on top of os.environ (None values remove one).
    cwd: working directory (default: the repository root).
    timeout: seconds before subprocess.TimeoutExpired fails the test.
    devices: if given, how many CPU devices XLA fakes.

  Returns:
    subprocess.CompletedProcess with text stdout and stderr.
  """
  full_env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  if devices is not None:
    full_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  for key, value in (env or {}).items():
    if value is None:
      full_env.pop(key, None)
    else:
      full_env[key] = value
  return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=full_env,
                        capture_output=True, text=True, timeout=timeout,
                        stdin=subprocess.DEVNULL)


# Experiments in this process ----------------------------------------------------

from sweeps.experiment_flags import load_experiment  # noqa: E402,F401  (tests look at several)
