"""A run's memory is estimated from its config before anything compiles
(`ntm_jax.training.memory_estimate`), and a run that cannot fit is refused
in one line naming the flag to lower.

The issue's cases (issue 29): on the copy experiment, `--batch_size 100000`
or `--memory_rows 1000000` want 118-177 GB per device (XLA's own figures for
the compiled chunk), and `--seeds 100000` grows past 16 GB resident; a
24 GB machine must refuse all three and take the default 30-seed run.
"""
import dataclasses
import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntm_jax import models
from absl import flags
from absl.testing import flagsaver

from ntm_jax import training
from ntm_jax.training import memory_estimate as estimate_lib
from conftest import load_experiment

GB = 1e9


def _copy(*argv):
  """The copy experiment's config from its flags, as the command line builds it."""
  from experiments import common
  load_experiment("copy")
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["copy", *argv])
    return common.config_from_flags("copy")


def _cpus(count):
  """Stand-ins for `count` local CPU devices (what the check reads of them)."""
  return [types.SimpleNamespace(platform="cpu", process_index=0, id=i) for i in range(count)]


@pytest.fixture
def machine_of_24_gb(monkeypatch):
  monkeypatch.setattr(estimate_lib, "available_memory_bytes", lambda device=None: 24 * GB)


@pytest.mark.parametrize("flag,hint", [("--batch_size=100000", "--batch_size"),
                                       ("--memory_rows=1000000", "--memory_rows"),
                                       ("--seeds=100000", "--seeds")])
@pytest.mark.parametrize("devices", [1, 2])
def test_the_issue_s_runs_are_refused_on_24_gb_in_one_line(machine_of_24_gb, flag, hint,
                                                           devices):
  config = _copy(flag)
  with pytest.raises(ValueError) as error:
    estimate_lib.check_fits(config, _cpus(devices))
  message = str(error.value)
  assert "\n" not in message and message.startswith("the run needs about ")
  assert "but 24 GB is available; lower " in message and hint in message.split("lower ")[1]
  needed = float(message.split("about ")[1].split(" GB")[0])
  assert needed > 24


def test_the_messages_say_what_takes_the_memory(machine_of_24_gb):
  def message(*argv):
    with pytest.raises(ValueError) as error:
      estimate_lib.check_fits(_copy(*argv), _cpus(2))
    return str(error.value)
  assert "activations of batch 100000 x 41 steps on 32 memory rows, 4 seeds at a time" in (
      message("--batch_size=100000"))
  assert "on 1000000 memory rows" in message("--memory_rows=1000000")
  assert "50000 seeds' training state" in message("--seeds=100000")
  assert "on each of 2 CPU devices" in message("--seeds=100000")


@pytest.mark.parametrize("devices", [1, 2])
def test_the_default_copy_run_fits_24_gb(machine_of_24_gb, devices):
  config = _copy()
  assert config.train.seeds == 30
  estimate_lib.check_fits(config, _cpus(devices))
  # ... and with room to spare: it needs a few GB.
  assert estimate_lib.estimate(config, devices, "cpu").total < 6 * GB


def _totals(configs, devices=2):
  return [estimate_lib.estimate(c, devices, "cpu").total for c in configs]


def test_the_estimate_grows_with_the_batch_the_seeds_and_the_memory():
  base = _copy()
  t, m = base.train, base.model
  for totals in (
      _totals([dataclasses.replace(base, train=dataclasses.replace(t, batch_size=b))
               for b in (1, 8, 64, 512, 4096, 100_000)]),
      _totals([dataclasses.replace(base, train=dataclasses.replace(t, seeds=s))
               for s in (1, 4, 30, 300, 3000, 100_000)]),
      _totals([dataclasses.replace(base, model=dataclasses.replace(m, memory_rows=n))
               for n in (32, 128, 1024, 8192, 1_000_000)])):
    assert totals == sorted(totals) and totals[-1] > 10 * totals[0], totals
  # Batch and rows scale the activations in proportion once they dominate.
  big, bigger = _totals([dataclasses.replace(base, train=dataclasses.replace(t, batch_size=b))
                         for b in (10_000, 20_000)])
  assert bigger == pytest.approx(2 * big, rel=0.05)


def test_an_accelerator_runs_all_its_seeds_at_once_and_is_checked_per_device(monkeypatch):
  config = _copy("--seeds=64")
  cpu, gpu = estimate_lib.estimate(config, 1, "cpu"), estimate_lib.estimate(config, 1, "gpu")
  # A CPU runs 4 seeds at a time, a GPU all 64: 16 x the training term.
  assert gpu.training == pytest.approx(16 * cpu.training)
  assert gpu.total == gpu.per_device  # a device's own memory, no shared overhead
  gpus = [types.SimpleNamespace(platform="gpu", process_index=0, id=i) for i in range(2)]
  monkeypatch.setattr(estimate_lib, "available_memory_bytes", lambda device=None: 40 * GB)
  estimate_lib.check_fits(config, gpus)  # 32 seeds on each of two 40 GB GPUs
  with pytest.raises(ValueError, match=r"per gpu device, most of it activations of batch "
                                       r"8192 x 41 steps on 32 memory rows, 32 seeds at a time, "
                                       r"but 40 GB is available; lower --batch_size, "
                                       r"--max_length, --memory_rows or --seeds$"):
    estimate_lib.check_fits(_copy("--seeds=64", "--batch_size=8192"), gpus)


def test_unknown_free_memory_skips_the_check(monkeypatch):
  monkeypatch.setattr(estimate_lib, "available_memory_bytes", lambda device=None: None)
  estimate_lib.check_fits(_copy("--batch_size=100000"), _cpus(2))  # nothing to compare


def test_available_memory_is_this_machine_s_memavailable():
  with open("/proc/meminfo") as f:
    info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
  available = estimate_lib.available_memory_bytes(jax.local_devices()[0])
  assert 0 < available <= info["MemTotal"]
  # Within what other processes can change between the two reads.
  assert abs(available - info["MemAvailable"]) < 0.2 * info["MemTotal"]


def test_an_accelerator_s_free_memory_comes_from_its_memory_stats():
  device = types.SimpleNamespace(platform="gpu", memory_stats=lambda: {
      "bytes_limit": 40 * GB, "bytes_in_use": 3 * GB})
  assert estimate_lib.available_memory_bytes(device) == 37 * GB
  assert estimate_lib.available_memory_bytes(
      types.SimpleNamespace(platform="tpu", memory_stats=lambda: None)) is None


def test_the_state_is_every_seed_s_train_state():
  config = _copy()
  one = training.init_states(config.model, config.train, 1)
  counted = sum(x.nbytes for x in jax.tree_util.tree_leaves(one))
  assert estimate_lib.state_bytes(config.model, config.train) == counted


# Against XLA: the compiled programs' own account of their buffers --------------


def _xla(config, program):
  """XLA's memory_analysis of the engine's chunk or test program on one CPU
  device, for the seeds one device holds."""
  from ntm_jax.runs.chunks import make_chunk
  t, model = config.train, config.model
  task = config.make_task()
  seeds = training.padded_seed_count(t.seeds, 1, training.default_group_target("cpu", model))
  states = jax.eval_shape(lambda: training.init_states(model, t, seeds))
  if program == "chunk":
    compiled = make_chunk(model, t, task).lower(states, np.int32(0)).compile()
  else:
    fn = training.make_seed_parallel(functools.partial(
        training.evaluate_lengths, task=task, model_config=model, lengths=t.test_lengths,
        batch_size=t.test_batch,
        memory_size=models.memory_size_for(model, t.test_memory_size)), None, model_config=model)
    keys = jax.ShapeDtypeStruct((seeds, 2), jnp.uint32)
    compiled = fn.lower(states.best_params, keys).compile()
  return compiled.memory_analysis()


@pytest.mark.slow  # two compiles of the copy chunk, one of its test
@pytest.mark.parametrize("argv,program", [
    (("--batch_size=256", "--seeds=4"), "chunk"),          # the batch's activations
    (("--memory_rows=1024", "--seeds=4"), "chunk"),        # the memory's
    (("--seeds=4", "--test_batch=32"), "test"),            # the long tests
])
def test_the_estimate_is_within_a_factor_of_2_above_xla_s(argv, program):
  config = _copy(*argv, "--eval_every=5")
  analysis = _xla(config, program)
  est = estimate_lib.estimate(config, 1, "cpu")
  measured = analysis.temp_size_in_bytes
  estimated = est.training if program == "chunk" else est.test
  assert measured <= estimated <= 2 * measured, (estimated, measured)
  if program == "chunk":  # the state: in and out, and the engine's copy
    held = analysis.argument_size_in_bytes + analysis.output_size_in_bytes
    assert held <= est.state <= 2 * held


def test_the_engine_refuses_a_run_that_cannot_fit_before_anything_is_written(
    monkeypatch, tmp_path):
  from ntm_jax.runs import engine
  from tests.conftest import TINY_EXPERIMENT
  # The tiny run on a machine of 1 MB; were it not refused, it stops short
  # of training (nothing here may compile or allocate for real).
  monkeypatch.setattr(estimate_lib, "available_memory_bytes", lambda device=None: 1e6)

  def not_refused(*args, **kwargs):
    raise RuntimeError("the run was not refused")
  monkeypatch.setattr(engine.start_lib, "start_or_resume", not_refused)
  with pytest.raises(ValueError, match="but 1 MB is available; lower "):
    engine.run(TINY_EXPERIMENT, str(tmp_path / "run"), progress=False, log=lambda _: None)
  assert not (tmp_path / "run").exists()
