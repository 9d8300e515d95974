"""Device set-up that must happen before JAX initialises its backend."""
import os

import jax


def use_all_cpu_cores() -> None:
  """Expose one JAX CPU device per core, so the seed axis can use every core.

  XLA's CPU backend keeps about one core busy on this workload; seeds sharded
  over one device per core run in parallel. Harmless on GPU/TPU machines:
  the setting only shapes the CPU backend, and accelerators stay the default.
  Call before any JAX computation; an explicit XLA_FLAGS device count wins.
  """
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return
  try:
    jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
  except RuntimeError:
    pass  # the backend is already up: keep what it has
