"""PROTOTYPE, NOT USED BY THE LIBRARY (RESULTS.md, "Throughput", tried and
not kept): the memory part of an NTM step as a compiled CPU kernel, behind
`jax.ffi`. To rerun the training-step comparison, copy this file to
ntm_jax/models/memory_kernel.py, memory_step.cc to ntm_jax/models/, and
apply ntm_sequence.patch (`git apply docs/throughput/memory_kernel/ntm_sequence.patch`).

`memory_step.cc` computes what `memory_step.step` and
`memory_step.step_vjp` compute in one kernel call per time step instead of
dozens of small XLA kernels, with the batch in the vector lanes (the
memory and weightings batch-minor, `to_lanes`); the forward saves what the
backward needs. With the patch, `ntm_sequence` uses it when
`enabled(config)`; elsewhere (a GPU or TPU backend, no C++ compiler,
`NTM_JAX_MEMORY_KERNEL=0`) the XLA path runs the same equations, rounded
differently, and `status()` says which.

The kernel is compiled on first use with the machine's C++ compiler (`CXX`,
default g++) for the machine's own CPU (-march=native) and cached under
`NTM_JAX_CACHE` (default ~/.cache/ntm_jax), keyed by the source, the flags,
the jaxlib version and the CPU's feature flags.
"""
import ctypes
import functools
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from ntm_jax.config import NTMConfig

SOURCE = pathlib.Path(__file__).parent / "memory_step.cc"
SWITCH = "NTM_JAX_MEMORY_KERNEL"  # "0": always the XLA path
_ACTIVATION_CODES = {"linear": 0, "tanh": 1, "relu": 2}
_FORWARD, _BACKWARD = "ntm_memory_step", "ntm_memory_step_vjp"


def _cpu_flags() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          return line
  except OSError:
    pass
  import platform
  return platform.processor()


def _build(compiler: str) -> pathlib.Path:
  """The compiled library's path, compiling it unless the cache has it."""
  flags = ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-std=c++17", "-shared", "-fPIC",
           f"-I{jax.ffi.include_dir()}"]
  key = hashlib.sha256()
  for part in (SOURCE.read_bytes(), " ".join([compiler] + flags).encode(),
               _jaxlib_version().encode(), _cpu_flags().encode()):
    key.update(part)
  cache = pathlib.Path(os.environ.get("NTM_JAX_CACHE", pathlib.Path.home() / ".cache" / "ntm_jax"))
  cache.mkdir(parents=True, exist_ok=True)
  target = cache / f"memory_step-{key.hexdigest()[:16]}.so"
  if not target.exists():
    # Compiled to a temporary name and renamed: two processes building at
    # once each get a whole library.
    fd, partial = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    try:
      done = subprocess.run([compiler, *flags, str(SOURCE), "-o", partial],
                            capture_output=True, text=True, timeout=300)
      if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        raise RuntimeError(errors[0] if errors else f"{compiler} exited with {done.returncode}")
      os.replace(partial, target)
    finally:
      if os.path.exists(partial):
        os.remove(partial)
  return target


def _jaxlib_version() -> str:
  import jaxlib
  return jaxlib.__version__


@functools.cache
def _load() -> tuple:
  """(library, None) once registered with XLA, or (None, why not)."""
  if os.environ.get(SWITCH, "1") == "0":
    return None, f"{SWITCH}=0"
  compiler = os.environ.get("CXX", "g++")
  if shutil.which(compiler) is None:
    return None, f"no C++ compiler {compiler!r}"
  try:
    path = _build(compiler)
    library = ctypes.cdll.LoadLibrary(str(path))
    jax.ffi.register_ffi_target(_FORWARD, jax.ffi.pycapsule(library.NtmMemoryStep),
                                platform="cpu")
    jax.ffi.register_ffi_target(_BACKWARD, jax.ffi.pycapsule(library.NtmMemoryStepVjp),
                                platform="cpu")
  except (OSError, RuntimeError, subprocess.SubprocessError) as error:
    return None, f"kernel build failed: {error}"
  library.NtmMemoryStepSavedSize.restype = ctypes.c_int64
  library.NtmMemoryStepSavedSize.argtypes = [ctypes.c_int64] * 5
  library.path = path
  return library, None


def enabled(config: NTMConfig) -> bool:
  """Whether `ntm_sequence` runs this config's memory part with the kernel:
  the default backend is the CPU and the kernel builds."""
  return (jax.default_backend() == "cpu" and config.key_activation in _ACTIVATION_CODES
          and config.add_activation in _ACTIVATION_CODES and _load()[0] is not None)


def status() -> str:
  """Which implementation the memory part runs on the default backend."""
  if jax.default_backend() != "cpu":
    return f"xla ({jax.default_backend()} backend)"
  library, why = _load()
  return f"cpu kernel {library.path.name}" if library is not None else f"xla ({why})"


def _attributes(config: NTMConfig) -> dict:
  return dict(shift_range=np.int64(config.shift_range),
              head_clip=np.float32(config.head_clip),
              key_activation=np.int64(_ACTIVATION_CODES[config.key_activation]),
              add_activation=np.int64(_ACTIVATION_CODES[config.add_activation]),
              forward_only_shift=bool(config.forward_only_shift))


def _like(x, shape=None) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(x.shape if shape is None else shape, jnp.float32)


def saved_rows(config: NTMConfig, memory_rows: int) -> int:
  """Rows of B floats the forward saves for the backward."""
  return int(_load()[0].NtmMemoryStepSavedSize(
      config.read_heads, config.write_heads, config.memory_width, memory_rows,
      config.shift_range))


def to_lanes(carry):
  """The memory carry (columns [B, M, N], read and write weightings
  [B, H, N], read vectors [B, R, M]) with the batch moved into the kernel's
  lanes: [M, N, B] and [H, N, B]; the read vectors stay [B, R, M]."""
  columns, read_w, write_w, read_vectors = carry
  move = lambda a: jnp.moveaxis(a, 0, -1)
  return move(columns), move(read_w), move(write_w), read_vectors


def from_lanes(carry):
  """The inverse of `to_lanes`."""
  columns, read_w, write_w, read_vectors = carry
  move = lambda a: jnp.moveaxis(a, -1, 0)
  return move(columns), move(read_w), move(write_w), read_vectors


def step_batch(config: NTMConfig, carry, raw, save: bool = False):
  """`memory_step.step` on a batch of B sequences in the kernel's layout.

  Args:
    carry: `to_lanes` of the memory carry: columns [M, N, B], read weights
      [R, N, B], write weights [W, N, B], read vectors [B, R, M].
    raw: [B, head_output_size].
    save: whether to return what `step_vjp_batch` needs.

  Any leading axes (a vmap over seeds) are further batches.

  Returns:
    (the carry after the step, same layout; saved [saved_rows, B] or [0, B]).
  """
  columns, read_prev, write_prev, read_vectors = carry
  rows = saved_rows(config, columns.shape[-2]) if save else 0
  saved = _like(raw, raw.shape[:-2] + (rows, raw.shape[-2]))
  call = jax.ffi.ffi_call(_FORWARD, tuple(map(_like, carry)) + (saved,),
                          vmap_method="broadcast_all")
  *new_carry, saved = call(*(jnp.asarray(x, jnp.float32)
                             for x in (columns, read_prev, write_prev, raw)),
                           **_attributes(config))
  return tuple(new_carry), saved


def step_vjp_batch(config: NTMConfig, carry, raw, saved, ct_new):
  """`memory_step.step_vjp` on a batch in the kernel's layout, from what
  `step_batch(save=True)` saved; ct_new in the carry's layout.

  Returns:
    (cotangents of the carry, the read vectors' zero; ct_raw [B, P]).
  """
  columns, read_prev, write_prev, read_vectors = carry
  call = jax.ffi.ffi_call(_BACKWARD, tuple(map(_like, (columns, read_prev, write_prev, raw))),
                          vmap_method="broadcast_all")
  ct_columns, ct_read_prev, ct_write_prev, ct_raw = call(
      *(jnp.asarray(x, jnp.float32)
        for x in (columns, read_prev, write_prev, raw, saved, *ct_new)),
      **_attributes(config))
  return (ct_columns, ct_read_prev, ct_write_prev, jnp.zeros_like(read_vectors)), ct_raw
