"""Multi-host runs: one process per host, the seed axis spread over all of them.

Every process runs the same program (JAX's multi-controller model). The seeds
are independent, so the training step needs no communication; only putting
the initial states onto the global mesh and gathering results back do.

    multi = distributed.initialize_from_env()  # before any other JAX call
    mesh = distributed.seed_mesh(devices)       # global devices if multi-host
    states = distributed.put_seeds(states, NamedSharding(mesh, P("seeds")))
    ...                                         # the same jitted chunk
    host = distributed.gather_seeds(metrics)    # full arrays on every host
    if distributed.is_main_process(): ...       # shared files: host 0 only

Environment variables that make `initialize_from_env` start jax.distributed:
  JAX_COORDINATOR_ADDRESS  "host:port" of process 0 (read by JAX itself).
    With it, JAX_NUM_PROCESSES and JAX_PROCESS_ID (read HERE: jax 0.10.2
    does not read them) give the process count and this process's index;
    when they are unset JAX detects them (Slurm, Open MPI, Cloud TPU, k8s).
  JAX_NUM_PROCESSES > 1 alone also counts (the coordinator then comes from
    cluster detection); JAX_NUM_PROCESSES=1 forces a single process, even
    under a launcher.
  Slurm      inside an `srun` step with SLURM_NTASKS > 1 (JAX's own test:
    SLURM_JOB_ID, SLURM_STEP_NODELIST, SLURM_NTASKS, SLURM_PROCID and
    SLURM_LOCALID all set; a batch script outside srun has no step nodelist).
  Open MPI   OMPI_COMM_WORLD_SIZE > 1 (mpirun). JAX finds the coordinator
    from OMPI_MCA_orte_hnp_uri; Open MPI 5 no longer sets it (jax issue
    14576), so there set JAX_COORDINATOR_ADDRESS too (count and rank are
    then taken from OMPI_COMM_WORLD_SIZE / _RANK here), or initialize raises.
  Cloud TPU on GKE  TPU_WORKER_HOSTNAMES or TPU_PROCESS_ADDRESSES listing
    more than one host, or MEGASCALE_NUM_SLICES > 1. (A GCE TPU VM pod keeps
    its topology in instance metadata, not the environment: set
    JAX_COORDINATOR_ADDRESS there and JAX detects the rest.)
Also read by JAX: JAX_COORDINATOR_PORT (port for detected coordinators),
JAX_COORDINATOR_BIND_ADDRESS, JAX_LOCAL_DEVICE_IDS.
"""
import os
from typing import Mapping, Optional

import jax
import numpy as np

_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS",
               "SLURM_PROCID", "SLURM_LOCALID")
_TPU_HOST_LISTS = ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES")


def _int_env(environ: Mapping[str, str], name: str) -> Optional[int]:
  value = environ.get(name, "").strip()
  if not value:
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"{name} must be an integer, got {value!r}") from None


def multi_process_env(environ: Optional[Mapping[str, str]] = None) -> bool:
  """Whether the environment says this is one process of several."""
  env = os.environ if environ is None else environ
  declared = _int_env(env, "JAX_NUM_PROCESSES")
  if declared is not None:
    return declared > 1  # explicit wins; JAX still finds the coordinator
  if env.get("JAX_COORDINATOR_ADDRESS"):
    return True  # the count comes from the launcher (JAX detects it)
  if all(name in env for name in _SLURM_VARS) and (_int_env(env, "SLURM_NTASKS") or 0) > 1:
    return True
  if (_int_env(env, "OMPI_COMM_WORLD_SIZE") or 0) > 1:
    return True
  if any(len(env.get(name, "").split(",")) > 1 for name in _TPU_HOST_LISTS):
    return True
  return (_int_env(env, "MEGASCALE_NUM_SLICES") or 0) > 1


def initialize_from_env() -> bool:
  """Starts jax.distributed if the environment asks for several processes.

  Call it before anything else touches JAX's backend (jax.devices(), any
  computation). Safe to call again. Returns whether jax.distributed is
  running, i.e. whether this is a multi-process run. Does not itself start
  the backend, so CPU device settings (devices.use_all_cpu_cores) may follow.
  """
  if jax.distributed.is_initialized():
    return True
  if not multi_process_env():
    return False
  # Cross-process transfers on CPU need a collectives implementation; gloo is
  # jax 0.10.2's default, but an explicit None would leave CPU hosts unable
  # to gather. Only the CPU client reads this flag.
  if jax.config.jax_cpu_collectives_implementation is None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # The coordinator address comes from JAX_COORDINATOR_ADDRESS or cluster
  # detection inside JAX; count and index only when given explicitly, so
  # that detection fills whatever is missing.
  env = os.environ
  num_processes = _int_env(env, "JAX_NUM_PROCESSES")
  process_id = _int_env(env, "JAX_PROCESS_ID")
  if "OMPI_COMM_WORLD_SIZE" in env and "OMPI_MCA_orte_hnp_uri" not in env:
    # Open MPI 5 (PRRTE) escapes JAX 0.10.2's detector, which reads ORTE's
    # variables; the rank variables are still there.
    if num_processes is None:
      num_processes = _int_env(env, "OMPI_COMM_WORLD_SIZE")
    if process_id is None:
      process_id = _int_env(env, "OMPI_COMM_WORLD_RANK")
  jax.distributed.initialize(num_processes=num_processes, process_id=process_id)
  return True


def is_main_process() -> bool:
  """Whether this process writes the shared files (config, summary, plots)."""
  return jax.process_index() == 0


def process_suffix() -> str:
  """"" in a single-process run, else ".host<index>": per-host file names."""
  return "" if jax.process_count() == 1 else f".host{jax.process_index()}"


def seed_mesh(devices: Optional[int] = None) -> jax.sharding.Mesh:
  """A 1-D mesh named "seeds".

  Single process: over the first `devices` local devices (default all).
  Several processes: over the first `devices` local devices OF EACH process
  (default all), ordered by process, so each host holds a contiguous block
  of seeds.
  """
  local = jax.local_devices()
  count = len(local) if devices is None else devices
  if not 1 <= count <= len(local):
    raise ValueError(f"devices must be in [1, {len(local)}], got {count}")
  if jax.process_count() == 1:
    return jax.sharding.Mesh(np.array(local[:count]), ("seeds",))
  by_process = {}
  for device in jax.devices():
    by_process.setdefault(device.process_index, []).append(device)
  chosen = [d for p in sorted(by_process)
            for d in sorted(by_process[p], key=lambda d: d.id)[:count]]
  return jax.sharding.Mesh(np.array(chosen), ("seeds",))


def _put_leaf(x, sharding):
  if isinstance(x, jax.Array):
    if x.sharding == sharding:
      return x
    if not x.is_fully_addressable:
      return jax.device_put(x, sharding)  # already global: reshard in place
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      # Typed keys cannot come from a host buffer: place their raw data.
      data = _put_leaf(jax.random.key_data(x), sharding)
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
  host = np.asarray(x)
  # Each process fills only the shards of its own devices, from its own
  # (identical) full copy: no transfer between hosts.
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def put_seeds(tree, sharding: jax.sharding.Sharding):
  """Places a pytree of full [S, ...] arrays, the same on every process, onto
  `sharding` (which may span processes). Leaves already global are resharded."""
  return jax.tree_util.tree_map(lambda x: _put_leaf(x, sharding), tree)


def _gather_leaf(x):
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)  # numpy holds no typed keys: their raw data
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    from jax.experimental import multihost_utils
    # Every process must reach this call: it is a collective.
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def gather_seeds(tree):
  """The full arrays of a pytree as numpy on EVERY process (a collective in a
  multi-process run: all processes must call it, with the same tree). Typed
  PRNG keys come back as their key data."""
  return jax.tree_util.tree_map(_gather_leaf, tree)


def local_seeds(tree):
  """(rows, host_tree): the seed rows this process holds and their values.

  rows: [R] int, sorted seed indices held by this process's devices;
  host_tree: the pytree as numpy with leaves [R, ...] (typed keys as key
  data). No communication: for per-host files of a host's own seeds.
  """
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  rows, host = None, []
  for x in leaves:
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    if not isinstance(x, jax.Array):
      x = np.asarray(x)
      leaf_rows, value = np.arange(x.shape[0]), x
    else:
      shards = {}
      for shard in x.addressable_shards:  # replicas share an index: keep one
        start, stop, _ = shard.index[0].indices(x.shape[0])
        shards.setdefault(start, (stop, shard.data))
      starts = sorted(shards)
      leaf_rows = np.concatenate([np.arange(s, shards[s][0]) for s in starts])
      value = np.concatenate([np.asarray(shards[s][1]) for s in starts])
    if rows is None:
      rows = leaf_rows
    elif not np.array_equal(rows, leaf_rows):
      raise ValueError("leaves are sharded differently over the seed axis")
    host.append(value)
  if rows is None:
    rows = np.zeros((0,), int)
  return rows, jax.tree_util.tree_unflatten(treedef, host)
