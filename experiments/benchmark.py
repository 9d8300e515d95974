"""Throughput of the seed-parallel engine on the copy task.

    python -m experiments.benchmark --seeds 1,8,30 --json benchmark.json

For each seed count: compile time, steps/s and sequences/s of the vmapped
engine on 1 device and on all devices, the same for a Python loop over seeds
calling the same compiled one-seed program, achieved FLOP/s (counted
analytically by `ntm_jax.analysis.flops`: XLA's cost analysis counts a scan body once)
against the CPU's estimated fp32 peak and against what one large matmul
per device reaches (the best case XLA achieves here), peak memory, and the time split
between training steps and the in-chunk evaluation.
"""
import dataclasses
import functools
import json
import os
import resource
import time

from absl import app
from absl import flags

_SEEDS = flags.DEFINE_list("seeds", ["1", "8", "30"], "Seed counts to measure.")
_CHUNKS = flags.DEFINE_integer("chunks", 3, "Timed chunks per measurement (after a warm-up).")
_STEPS = flags.DEFINE_integer("steps_per_chunk", 100, "Training steps per compiled chunk.")
_BATCH = flags.DEFINE_integer("batch_size", 4, "Sequences per seed per step.")
_LOOP = flags.DEFINE_bool("python_loop", True, "Also time a Python loop over seeds.")
_ALL_AT_ONCE = flags.DEFINE_bool(
    "all_at_once", True, "Also time every seed of a device vmapped at once (no seed groups).")
_JSON = flags.DEFINE_string("json", None, "Write the results here as JSON.")
_DEVICES = flags.DEFINE_list("devices", None, "Device counts to compare (default: 1 and all).")


def _cpu_peak_flops():
  """Estimated fp32 peak of this CPU: cores x GHz x FLOPs/cycle (FMA width)."""
  try:
    with open("/proc/cpuinfo") as f:
      info = f.read()
  except OSError:
    return None, "unknown CPU"
  mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
  flags_line = next((l for l in info.splitlines() if l.startswith("flags")), "")
  # Two FMA units per core, each lane doing a multiply and an add.
  lanes = 16 if " avx512f" in flags_line else 8 if " avx2" in flags_line else 4
  per_cycle = 2 * 2 * lanes
  cores = os.cpu_count() or 1
  ghz = (max(mhz) if mhz else 2000.0) / 1000.0
  peak = cores * ghz * 1e9 * per_cycle
  return peak, f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOPs/cycle"


def _matmul_flops_per_s(mesh, size: int = 1024, repeats: int = 10) -> float:
  """FLOP/s XLA reaches on this machine's best case: one large fp32 matmul
  per device of `mesh`, all at once; the yardstick beside the nominal peak."""
  import jax
  import jax.numpy as jnp
  spec = jax.sharding.PartitionSpec("seeds")
  sharding = jax.sharding.NamedSharding(mesh, spec)
  a = jax.device_put(jnp.ones((mesh.size, size, size), jnp.float32), sharding)
  matmul = jax.jit(jax.shard_map(lambda x: jnp.einsum("dij,djk->dik", x, x), mesh=mesh,
                                 in_specs=spec, out_specs=spec))
  jax.block_until_ready(matmul(a))
  began = time.perf_counter()
  for _ in range(repeats):
    out = matmul(a)
  jax.block_until_ready(out)
  return repeats * mesh.size * 2 * size ** 3 / (time.perf_counter() - began)


def _timed(fn, *args):
  began = time.perf_counter()
  out = fn(*args)
  import jax
  jax.block_until_ready(out)
  return out, time.perf_counter() - began


def main(argv):
  del argv
  import ntm_jax.training.devices as devices_lib
  devices_lib.use_all_cpu_cores()
  import jax
  import numpy as np
  from ntm_jax import NTMConfig
  import ntm_jax.runs.engine as experiment
  import ntm_jax.training.distributed as distributed
  import ntm_jax.analysis.flops as flops_lib
  import ntm_jax.training as train
  from ntm_jax.tasks import CopyTask

  task = CopyTask()
  model = NTMConfig(task.input_size, task.output_size)
  all_devices = len(jax.local_devices())
  device_counts = ([int(d) for d in _DEVICES.value] if _DEVICES.value
                   else sorted({1, all_devices}))
  peak, peak_note = _cpu_peak_flops() if jax.default_backend() == "cpu" else (None, "")
  results = {"backend": jax.default_backend(), "devices_available": all_devices,
             "cpu_peak_flops": peak, "cpu_peak_note": peak_note,
             "steps_per_chunk": _STEPS.value, "batch_size": _BATCH.value, "rows": []}

  def measure(seeds, device_count, group_target="auto"):
    config = train.TrainConfig(seeds=seeds, steps=_STEPS.value, eval_every=_STEPS.value,
                               batch_size=_BATCH.value)
    mesh = distributed.seed_mesh(device_count)
    padded = -(-seeds // mesh.size) * mesh.size
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
    states = jax.device_put(train.init_states(model, config, padded), sharding)
    chunk = train.make_seed_parallel(functools.partial(
        train.train_chunk, task=task, model_config=model, config=config), mesh,
        group_target=group_target, model_config=model)
    if group_target == "auto":
      group_target = train.default_group_target(jax.default_backend(), model)
    group = train.seeds_per_group(padded // mesh.size, group_target)
    began = time.perf_counter()
    compiled = chunk.lower(states).compile()
    compile_s = time.perf_counter() - began
    # FLOPs of one chunk: the training steps, then the evaluation's forward
    # passes over its fresh sequences, for every (unpadded) seed.
    steps_per_sequence = task.sequence_steps(config.max_length)
    eval_sequences = (config.max_length - config.min_length + 1) * max(
        1, -(-config.eval_batch // (config.max_length - config.min_length + 1)))
    flops = seeds * (
        _STEPS.value * flops_lib.train_step_flops(model, _BATCH.value, steps_per_sequence)
        + eval_sequences * steps_per_sequence * flops_lib.forward_flops_per_step(model))
    states = _timed(compiled, states)[0][0]  # warm-up
    seconds = []
    for _ in range(_CHUNKS.value):
      out, dt = _timed(compiled, states)
      states = out[0]
      seconds.append(dt)
    dt = float(np.median(seconds))
    # The in-chunk evaluation alone, to split the time.
    lengths = np.arange(config.min_length, config.max_length + 1)
    per_length = max(1, -(-config.eval_batch // len(lengths)))
    evaluate = train.make_seed_parallel(lambda p, k: train.evaluate_padded(
        p, k, task, model, lengths, per_length, config.max_length, None), mesh,
        group_target=group_target)
    keys = jax.device_put(jax.vmap(jax.random.PRNGKey)(np.arange(padded)), sharding)
    _timed(evaluate, states.params, keys)
    _, eval_s = _timed(evaluate, states.params, keys)
    steps_per_s = _STEPS.value / dt
    row = {"seeds": seeds, "devices": mesh.size, "engine": "vmap",
           "seeds_per_group": group,
           "compile_s": compile_s, "chunk_s": dt, "steps_per_s": steps_per_s,
           "sequences_per_s": steps_per_s * seeds * _BATCH.value,
           "eval_fraction": eval_s / dt, "flops_per_chunk": flops,
           "flops_per_s": flops / dt}
    if peak:
      row["fraction_of_peak"] = row["flops_per_s"] / peak
    return row, states

  def measure_loop(seeds, device_count):
    """A Python loop over seeds, each chunk of each seed the same compiled
    one-seed program; seed s lives on device s % device_count, and JAX's
    asynchronous dispatch lets the devices work at the same time."""
    config = train.TrainConfig(seeds=1, steps=_STEPS.value, eval_every=_STEPS.value,
                               batch_size=_BATCH.value)
    one = train.make_seed_parallel(functools.partial(
        train.train_chunk, task=task, model_config=model, config=config))
    local = jax.local_devices()[:device_count]
    states = [jax.device_put(train.init_states(model, dataclasses.replace(config, seed=s), 1),
                             local[s % device_count]) for s in range(seeds)]
    for d in range(min(seeds, device_count)):
      states[d] = _timed(one, states[d])[0][0]  # compile + warm-up
    seconds = []
    for _ in range(_CHUNKS.value):
      began = time.perf_counter()
      for s in range(seeds):
        states[s] = one(states[s])[0]
      jax.block_until_ready(states)
      seconds.append(time.perf_counter() - began)
    dt = float(np.median(seconds))
    steps_per_s = _STEPS.value / dt
    return {"seeds": seeds, "devices": device_count, "engine": "python loop", "chunk_s": dt,
            "steps_per_s": steps_per_s, "sequences_per_s": steps_per_s * seeds * _BATCH.value}

  for seeds in (int(s) for s in _SEEDS.value):
    rows = [measure(seeds, d)[0] for d in device_counts]
    if _ALL_AT_ONCE.value and rows[-1]["seeds_per_group"] < -(-seeds // rows[-1]["devices"]):
      rows.append(measure(seeds, device_counts[-1], group_target=None)[0])
    if _LOOP.value and seeds > 1:
      rows += [measure_loop(seeds, d) for d in device_counts]
    for row in rows:
      results["rows"].append(row)
      print(json.dumps(row), flush=True)
  results["matmul_flops_per_s"] = _matmul_flops_per_s(distributed.seed_mesh(all_devices))
  results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

  print(f"\n{'engine':<12} {'seeds':>5} {'dev':>3} {'group':>5} {'compile s':>9} {'steps/s':>8} "
        f"{'seq/s':>8} {'GFLOP/s':>8} {'% peak':>7} {'eval %':>6}")
  for r in results["rows"]:
    gflops = r.get("flops_per_s")
    print(f"{r['engine']:<12} {r['seeds']:>5} {r['devices']:>3} {r.get('seeds_per_group', 1):>5} "
          f"{r.get('compile_s', float('nan')):>9.1f} {r['steps_per_s']:>8.2f} "
          f"{r['sequences_per_s']:>8.0f} {gflops / 1e9 if gflops else float('nan'):>8.2f} "
          f"{100 * r.get('fraction_of_peak', float('nan')):>7.2f} "
          f"{100 * r.get('eval_fraction', float('nan')):>6.1f}")
  print(f"FLOPs counted analytically (ntm_jax.analysis.flops). Peak fp32 estimate: "
        f"{peak_note}; peak RSS {results['peak_rss_mb']:.0f} MB")
  matmul = results["matmul_flops_per_s"]
  print(f"Yardstick: a 1024 x 1024 fp32 matmul per device reaches {matmul / 1e9:.1f} GFLOP/s"
        + (f" ({100 * matmul / peak:.0f}% of the estimated peak)" if peak else ""))
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main)
