"""Multi-host support: seeds spread over processes match one process."""
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import ntm_jax.training.distributed as distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multihost_worker.py")
_LAUNCHER_PREFIXES = ("JAX_", "SLURM_", "OMPI_", "TPU_", "MEGASCALE_")


def _seed_sharding(mesh):
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))


def test_seed_mesh_single_process_matches_experiment_rules():
  count = len(jax.local_devices())
  assert distributed.seed_mesh().size == count
  assert distributed.seed_mesh(1).axis_names == ("seeds",)
  for bad in (0, count + 1):
    with pytest.raises(ValueError, match=rf"devices must be in \[1, {count}\], got {bad}"):
      distributed.seed_mesh(bad)


def test_put_then_gather_round_trips_on_the_mesh():
  mesh = distributed.seed_mesh()
  seeds = 2 * mesh.size  # whatever devices the test process has
  tree = {"w": np.arange(6 * seeds, dtype=np.float32).reshape(seeds, 3, 2),
          "step": np.arange(seeds, dtype=np.int32),
          "key": jax.vmap(jax.random.PRNGKey)(np.arange(seeds)),
          "typed": jax.random.split(jax.random.key(0), seeds)}
  placed = distributed.put_seeds(tree, _seed_sharding(mesh))
  for leaf in jax.tree_util.tree_leaves(placed):
    assert leaf.sharding == _seed_sharding(mesh)
  assert jax.dtypes.issubdtype(placed["typed"].dtype, jax.dtypes.prng_key)
  assert distributed.put_seeds(placed, _seed_sharding(mesh))["w"] is placed["w"]
  back = distributed.gather_seeds(placed)
  assert isinstance(back["w"], np.ndarray)
  np.testing.assert_array_equal(back["w"], tree["w"])
  np.testing.assert_array_equal(back["key"], tree["key"])
  np.testing.assert_array_equal(back["typed"], jax.random.key_data(tree["typed"]))
  rows, local = distributed.local_seeds(placed)
  np.testing.assert_array_equal(rows, np.arange(seeds))
  np.testing.assert_array_equal(local["step"], tree["step"])


def test_single_process_helpers():
  assert distributed.is_main_process()
  assert distributed.process_suffix() == ""


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "1"}, False),
    ({"JAX_NUM_PROCESSES": "4"}, True),
    ({"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "2",
      "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, True),
    ({"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n1", "SLURM_NTASKS": "1",
      "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, False),
    # A batch script outside srun: one process despite --ntasks.
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_PROCID": "0",
      "SLURM_LOCALID": "0"}, False),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, True),
    ({"OMPI_COMM_WORLD_SIZE": "1"}, False),
    ({"TPU_WORKER_HOSTNAMES": "a,b"}, True),
    ({"TPU_WORKER_HOSTNAMES": "a"}, False),
    ({"MEGASCALE_NUM_SLICES": "2"}, True),
])
def test_multi_process_env(env, expected):
  assert distributed.multi_process_env(env) is expected


def test_initialize_from_env_does_nothing_for_one_process(monkeypatch):
  for name in list(os.environ):
    if name.startswith(_LAUNCHER_PREFIXES):
      monkeypatch.delenv(name)
  assert distributed.initialize_from_env() is False
  assert not jax.distributed.is_initialized()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _worker_env(**extra) -> dict:
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(_LAUNCHER_PREFIXES) and "proxy" not in k.lower()}
  env.pop("XLA_FLAGS", None)  # one CPU device per process
  # conftest's flag, dropped with the other JAX_ variables above.
  env.update(PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="true",
             **extra)
  return env


def _run_all(commands, log_dir, timeout: float):
  """Runs [(argv, env)] at once; [(returncode, stdout, stderr)]. The first
  failure or the timeout kills the rest: a lone survivor would wait minutes
  for its peer in jax.distributed."""
  logs, procs = [], []
  for i, (argv, env) in enumerate(commands):
    out, err = (open(log_dir / f"worker{i}.{kind}", "w+") for kind in ("out", "err"))
    logs.append((out, err))
    procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=err))
  deadline = time.monotonic() + timeout
  timed_out = False
  try:
    while True:
      codes = [p.poll() for p in procs]  # poll each: any() would stop early
      if None not in codes or any(code not in (None, 0) for code in codes):
        break
      if time.monotonic() > deadline:
        timed_out = True
        break
      time.sleep(0.1)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.wait()
  results = []
  for p, (out, err) in zip(procs, logs):
    out.seek(0)
    err.seek(0)
    results.append((p.returncode, out.read(), err.read()))
    out.close()
    err.close()
  if timed_out:
    pytest.fail(f"workers still running after {timeout:.0f} s; stderr tails:\n" +
                "\n".join(err[-1000:] for _, _, err in results))
  return results


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
  """Two processes with one CPU device each train 4 seeds (2 per host) and
  gather the same params and metrics as one process on one device."""
  port = _free_port()
  # Each process gets its own path, so a write by process 1 would show.
  outs = tmp_path / "outs"
  outs.mkdir()
  multi_outs = [outs / f"multi{i}.npz" for i in range(2)]
  single_out = outs / "single.npz"
  commands = [([sys.executable, WORKER, str(multi_outs[i]), "2"],
               _worker_env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                           JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)))
              for i in range(2)]
  commands.append(([sys.executable, WORKER, str(single_out), "1"], _worker_env()))
  results = _run_all(commands, tmp_path, timeout=180)
  for i, (code, _, err) in enumerate(results):
    assert code == 0, f"worker {i} failed (exit {code}):\n{err[-3000:]}"
  stdouts = [out for _, out, _ in results]
  # Each host holds a contiguous half of the seeds; per-host file suffixes.
  assert "rows 0 1\n" in stdouts[0] and "suffix '.host0'" in stdouts[0]
  assert "rows 2 3\n" in stdouts[1] and "suffix '.host1'" in stdouts[1]
  assert "rows 0 1 2 3\n" in stdouts[2] and "suffix ''" in stdouts[2]
  # Only process 0 wrote, and what it gathered matches the single process.
  assert sorted(p.name for p in outs.iterdir()) == ["multi0.npz", "single.npz"]
  with np.load(multi_outs[0]) as multi, np.load(single_out) as single:
    assert sorted(multi.files) == sorted(single.files)
    assert any(name.startswith("evals") for name in multi.files)
    for name in single.files:
      assert multi[name].shape[0] == 4, name
      np.testing.assert_allclose(multi[name], single[name], rtol=1e-5, atol=1e-6,
                                 err_msg=name)
