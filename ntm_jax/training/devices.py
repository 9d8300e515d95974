"""Device set-up that must happen before JAX initialises its backend."""
import os

import jax

# XLA CPU options that make the NTM's training step faster; each was measured
# on the copy task, 30 seeds over 2 CPU devices (jax 0.10.2, 2-core Xeon):
# - no YNNPACK fusions: YNNPACK ran the backward pass's batched matmuls with
#   a transposed operand (e.g. head outputs -> controller, [15, 4, 92] x
#   [15, 100, 92]^T) about 3x slower than XLA's own dot; without it the
#   step ran 10.3 -> 12.1 steps/s;
# - single-threaded Eigen: every device already has a core of its own, so
#   intra-op threads only contend with the other device (about +2%).
# Neither changes the mathematics: same operations, no fast-math.
CPU_XLA_FLAGS = (
    "--xla_cpu_experimental_ynn_fusion_type=",
    "--xla_cpu_multi_thread_eigen=false",
)


def tune_cpu_flags() -> None:
  """Adds CPU_XLA_FLAGS to XLA_FLAGS, unless the user set the same options.

  Only XLA's CPU backend reads them; on a GPU or TPU they change nothing.
  Effective only before JAX starts its backend (the first computation).
  """
  current = os.environ.get("XLA_FLAGS", "")
  extra = [flag for flag in CPU_XLA_FLAGS if flag.split("=")[0] not in current]
  if extra:
    os.environ["XLA_FLAGS"] = " ".join([current, *extra]).strip()


def use_all_cpu_cores() -> bool:
  """Expose one JAX CPU device per core, so the seed axis can use every core,
  and tune XLA's CPU backend for this workload (`tune_cpu_flags`).

  XLA's CPU backend keeps about one core busy on this workload; seeds sharded
  over one device per core run in parallel. Harmless on GPU/TPU machines:
  the setting only shapes the CPU backend, and accelerators stay the default.
  Call before any JAX computation; an explicit XLA_FLAGS device count wins.
  Returns False if JAX's backend had already started (then nothing changed).
  """
  tune_cpu_flags()
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return True
  try:
    jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
  except RuntimeError:
    return False  # the backend is already up: keep what it has
  return True


def fewer_devices_than_cores() -> bool:
  """A CPU backend with fewer devices than the machine has cores."""
  return jax.default_backend() == "cpu" and jax.local_device_count() < (os.cpu_count() or 1)


def too_late_message() -> str:
  return (f"note: JAX started before ntm_jax could ask for one CPU device per core; "
          f"the seeds share {jax.local_device_count()} device(s). Call "
          "ntm_jax.training.devices.use_all_cpu_cores() before any JAX operation "
          "to use every core.")
