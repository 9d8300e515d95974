"""Training throughput of the seed-parallel engine on the copy task, counting
only useful work, and the same against another commit.

    python -m experiments.benchmark --seeds 8,30 --json benchmark.json
    python -m experiments.benchmark --seeds 30 --baseline_ref bd7704a

For each seed and device count: compile time, steps/s, sequences/s and
useful time steps/s (a sequence of length l counts its task's
sequence_steps(l) steps, never the padding up to max_length), and useful
FLOP/s (`ntm_jax.analysis.flops`, counted analytically on the useful steps:
XLA's cost analysis counts a loop body once) as a fraction of the CPU's
nominal fp32 peak and of what one 1024 x 1024 matmul per device reaches.

--baseline_ref times `python -m experiments.copy` (summary.json's
timing.train_s) in this tree and in a temporary `git worktree` of the
commit, back to back, and prints their ratio: the engine's own code differs
between commits, the command line does not.

    python -m experiments.benchmark --tasks copy,dyck [--models ntm,lstm] [--seeds 8]

--tasks (names from copy, repeat_copy, associative_recall, ngrams,
priority_sort, dyck) measures instead, for each task and each of --models
(default ntm,lstm), the configuration `python -m experiments.<task> --model
<kind>` trains by default (its batch size, lengths, model and memory sizes)
at --seeds seeds (default 8 here) on all devices: one warm-up chunk of
--steps_per_chunk steps, then --chunks timed ones (each ending with an
evaluation, as a run's chunk of eval_every steps does; 250 by default).
One table, and the rows under "tasks" in --json: parameters, seeds, batch per
seed, compile s, steps/s, sequences/s (all seeds and per seed), useful time
steps/s and hours per million training sequences per seed at that seed
count (`experiments/task_throughput.py`). --batch_size, --memory_rows,
--devices and --baseline_ref belong to the copy measurement and are refused
beside --tasks.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from experiments import common

_SEEDS = flags.DEFINE_list("seeds", ["8", "30"], "Seed counts to measure in process.")
_CHUNKS = flags.DEFINE_integer("chunks", 3, "Timed chunks per measurement (after a warm-up).")
_STEPS = flags.DEFINE_integer("steps_per_chunk", 100, "Training steps per compiled chunk.")
_BATCH = flags.DEFINE_integer("batch_size", 4, "Sequences per seed per step.")
_ROWS = flags.DEFINE_integer("memory_rows", 128, "Memory rows N of the copy NTM.")
_TASKS = flags.DEFINE_list("tasks", [], "Measure these tasks at their experiments' defaults "
                           "instead of the copy NTM (see the docstring).")
_MODELS = flags.DEFINE_list("models", ["ntm", "lstm"], "Model kinds measured with --tasks.")
_JSON = flags.DEFINE_string("json", None, "Write the results here as JSON.")
_DEVICES = flags.DEFINE_list("devices", None, "Device counts to compare (default: 1 and all).")
_REF = flags.DEFINE_string("baseline_ref", None,
                           "A git commit to compare with (experiments.copy in a worktree).")
_REF_SEEDS = flags.DEFINE_integer("baseline_seeds", 30, "--seeds of the compared runs.")
_REF_STEPS = flags.DEFINE_integer("baseline_steps", 1000, "--steps of the compared runs.")
_REF_EVAL = flags.DEFINE_integer("baseline_eval_every", 250, "--eval_every of the compared runs.")
_REF_REPEATS = flags.DEFINE_integer("baseline_repeats", 1,
                                    "Back-to-back (baseline, this tree) pairs of runs.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check_flags() -> list:
  """Every flag, before any work: the seed counts, or ValueError (one line)."""
  if _JSON.value is not None:
    path = os.path.abspath(_JSON.value)
    if os.path.isdir(path):
      raise ValueError(f"--json {_JSON.value} is a directory")
    if not os.access(os.path.dirname(path), os.W_OK):
      raise ValueError(f"--json {_JSON.value}: its directory does not exist or cannot be written")
  if _TASKS.value:
    import experiments.task_throughput as task_throughput
    task_throughput.check_names(_TASKS.value, _MODELS.value)
    given = [f"--{f.name}" for f in (_BATCH, _ROWS, _DEVICES, _REF) if f.present]
    if given:
      raise ValueError(f"{', '.join(given)}: the copy measurement's; --tasks measures each "
                       "experiment's own settings on all devices")
  elif _MODELS.present:
    raise ValueError("--models needs --tasks")
  try:
    seeds = [int(s) for s in _SEEDS.value] if _SEEDS.present or not _TASKS.value else [8]
    devices = [int(d) for d in _DEVICES.value or []]
  except ValueError:
    raise ValueError("--seeds and --devices must be lists of integers") from None
  for name, values in (("--seeds", seeds), ("--devices", devices)):
    if any(v < 1 for v in values):
      raise ValueError(f"{name} must be >= 1, got {values}")
  for flag in (_CHUNKS, _STEPS, _BATCH, _ROWS, _REF_SEEDS, _REF_STEPS, _REF_EVAL, _REF_REPEATS):
    if flag.value < 1:
      raise ValueError(f"--{flag.name} must be >= 1, got {flag.value}")
  if _REF.value is not None:
    if _REF_EVAL.value > _REF_STEPS.value:
      raise ValueError("--baseline_eval_every must be <= --baseline_steps")
    found = subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", "--quiet",
                            f"{_REF.value}^{{commit}}"], capture_output=True, text=True)
    if found.returncode != 0:
      raise ValueError(f"--baseline_ref {_REF.value} is not a commit of {ROOT}")
  return seeds


def _cpu_peak_flops():
  """Nominal fp32 peak of this CPU: cores x GHz x FLOPs/cycle (FMA width)."""
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
  return cores * ghz * 1e9 * per_cycle, f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOPs/cycle"


def _matmul_flops_per_s(size: int = 1024, repeats: int = 10) -> float:
  """FLOP/s of XLA's best case here: one large fp32 matmul per device, all
  at once; the yardstick beside the nominal peak."""
  import jax
  import jax.numpy as jnp
  devices = jax.local_devices()
  a = [jax.device_put(jnp.ones((size, size), jnp.float32), d) for d in devices]
  matmul = jax.jit(lambda x: x @ x)
  jax.block_until_ready([matmul(x) for x in a])
  began = time.perf_counter()
  out = [matmul(x) for x in a for _ in range(repeats)]
  jax.block_until_ready(out)
  return repeats * len(devices) * 2 * size ** 3 / (time.perf_counter() - began)


def _measure(seeds: int, device_count: int, peak, yardstick) -> dict:
  """One in-process measurement of the engine's compiled chunk."""
  import numpy as np
  from ntm_jax import NTMConfig
  import ntm_jax.analysis.flops as flops_lib
  import ntm_jax.training as train
  import ntm_jax.training.distributed as distributed
  from ntm_jax.tasks import CopyTask
  from experiments.task_throughput import drawn_lengths, timed_chunks

  task = CopyTask()
  model = NTMConfig(task.input_size, task.output_size, memory_rows=_ROWS.value)
  steps = _STEPS.value
  config = train.TrainConfig(seeds=seeds, steps=steps, eval_every=steps, batch_size=_BATCH.value)
  mesh = distributed.seed_mesh(device_count)
  padded = -(-seeds // mesh.size) * mesh.size
  compile_s, timed = timed_chunks(model, config, task, mesh, padded, _CHUNKS.value)
  # The evaluation ends every chunk: padded, but only its sequences' own
  # steps are useful.
  lengths = np.arange(config.min_length, config.max_length + 1)
  per_length = max(1, -(-config.eval_batch // len(lengths)))
  eval_steps = per_length * sum(task.sequence_steps(int(l)) for l in lengths)
  time_steps, flops = 0, 0
  for start, _, converged in timed:  # every seed draws the same lengths here
    train_steps = [task.sequence_steps(int(l))
                   for l in drawn_lengths(config, start, steps, converged[:seeds])[:, 0]]
    time_steps += seeds * _BATCH.value * sum(train_steps)
    flops += seeds * (sum(flops_lib.train_step_flops(model, _BATCH.value, t) for t in train_steps)
                      + eval_steps * flops_lib.forward_flops_per_step(model))
  seconds = [s for _, s, _ in timed]
  total = sum(seconds)
  row = {"seeds": seeds, "devices": mesh.size, "compile_s": compile_s,
         "chunk_s": float(np.median(seconds)), "steps_per_s": _CHUNKS.value * steps / total,
         "sequences_per_s": _CHUNKS.value * steps * seeds * _BATCH.value / total,
         "useful_time_steps_per_s": time_steps / total, "useful_flops_per_s": flops / total}
  row["fraction_of_matmul"] = row["useful_flops_per_s"] / yardstick
  if peak:
    row["fraction_of_peak"] = row["useful_flops_per_s"] / peak
  return row


def _copy_timing(tree: str, out_dir: str) -> dict:
  """summary.json's timing of one `experiments.copy` run in `tree`."""
  command = [sys.executable, "-m", "experiments.copy", f"--seeds={_REF_SEEDS.value}",
             f"--steps={_REF_STEPS.value}", f"--eval_every={_REF_EVAL.value}",
             f"--batch_size={_BATCH.value}", f"--memory_rows={_ROWS.value}",
             "--plots=false", "--progress=false", f"--out_dir={out_dir}"]
  env = dict(os.environ, PYTHONPATH=tree)
  done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
  if done.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} in {tree} failed:\n{done.stderr[-2000:]}")
  with open(os.path.join(out_dir, "summary.json")) as f:
    return json.load(f)["timing"]


def _compare_with(ref: str) -> dict:
  """Back-to-back experiments.copy runs of `ref` and of this tree."""
  import numpy as np
  with tempfile.TemporaryDirectory(prefix="ntm_benchmark_") as scratch:
    tree = os.path.join(scratch, "tree")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, ref],
                   check=True, capture_output=True)
    try:
      runs = {"baseline": [], "this": []}
      for i in range(_REF_REPEATS.value):
        for name, where in (("baseline", tree), ("this", ROOT)):
          timing = _copy_timing(where, os.path.join(scratch, f"{name}{i}"))
          runs[name].append({k: timing[k] for k in ("train_s", "compile_s")})
          print(f"{name:<8} {ref if name == 'baseline' else 'this tree':>10}: train "
                f"{timing['train_s']:.1f} s, compile {timing['compile_s']:.1f} s", flush=True)
    finally:
      subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree],
                     capture_output=True)
  median = lambda name, key: float(np.median([r[key] for r in runs[name]]))
  return {"ref": ref, "runs": runs,
          "train_speedup": median("baseline", "train_s") / median("this", "train_s"),
          "compile_ratio": median("this", "compile_s") / median("baseline", "compile_s")}


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  try:
    seed_counts = _check_flags()
  except ValueError as error:
    sys.exit(f"error: {error}")
  import ntm_jax.training.devices as devices_lib
  devices_lib.use_all_cpu_cores()
  import jax
  if _TASKS.value:
    try:
      _write_json(_measure_tasks(seed_counts))
    except ValueError as error:
      sys.exit(f"error: {error}")
    return
  all_devices = len(jax.local_devices())
  device_counts = sorted({int(d) for d in _DEVICES.value or [1, all_devices]})
  if device_counts[-1] > all_devices:
    sys.exit(f"error: --devices {device_counts[-1]} exceeds the {all_devices} available")
  peak, peak_note = _cpu_peak_flops() if jax.default_backend() == "cpu" else (None, "")
  yardstick = _matmul_flops_per_s()
  results = {"backend": jax.default_backend(), "devices_available": all_devices,
             "cpu_peak_flops": peak, "cpu_peak_note": peak_note, "matmul_flops_per_s": yardstick,
             "steps_per_chunk": _STEPS.value, "batch_size": _BATCH.value, "rows": []}
  for seeds in seed_counts:
    for devices in device_counts:
      row = _measure(seeds, devices, peak, yardstick)
      results["rows"].append(row)
      print(json.dumps(row), flush=True)
  results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"\n{'seeds':>5} {'dev':>3} {'compile s':>9} {'steps/s':>8} {'seq/s':>8} "
        f"{'useful T/s':>10} {'GFLOP/s':>8} {'% peak':>7} {'% matmul':>8}")
  for r in results["rows"]:
    print(f"{r['seeds']:>5} {r['devices']:>3} {r['compile_s']:>9.1f} {r['steps_per_s']:>8.2f} "
          f"{r['sequences_per_s']:>8.0f} {r['useful_time_steps_per_s']:>10.0f} "
          f"{r['useful_flops_per_s'] / 1e9:>8.2f} "
          f"{100 * r.get('fraction_of_peak', float('nan')):>7.2f} "
          f"{100 * r['fraction_of_matmul']:>8.2f}")
  print(f"Useful work only (each sequence's own time steps); FLOPs counted analytically "
        f"(ntm_jax.analysis.flops). Peak fp32: {peak_note}. Yardstick: a 1024 x 1024 fp32 "
        f"matmul per device, {yardstick / 1e9:.1f} GFLOP/s. Peak RSS "
        f"{results['peak_rss_mb']:.0f} MB")
  if _REF.value is not None:
    results["baseline"] = _compare_with(_REF.value)
    b = results["baseline"]
    print(f"training {b['train_speedup']:.2f}x faster than {_REF.value} (train_s ratio, "
          f"median of {_REF_REPEATS.value}); compile time x{b['compile_ratio']:.2f}")
  _write_json(results)


def _measure_tasks(seed_counts: list) -> dict:
  """--tasks: each task's and model's default configuration, every config
  checked before the first compiles; one table."""
  import jax
  import experiments.task_throughput as task_throughput
  pairs = [(task, kind) for task in _TASKS.value for kind in _MODELS.value]
  configs = task_throughput.default_configs(pairs)
  for config in configs:
    for seeds in seed_counts:
      task_throughput.prepare(config, seeds, _STEPS.value, _CHUNKS.value)
  rows = []
  for config in configs:
    for seeds in seed_counts:
      rows.append(task_throughput.measure(config, seeds, _STEPS.value, _CHUNKS.value))
      print(json.dumps(rows[-1]), flush=True)
  print("\n" + task_throughput.format_table(rows))
  return {"backend": jax.default_backend(), "devices_available": len(jax.local_devices()),
          "steps_per_chunk": _STEPS.value, "chunks": _CHUNKS.value, "tasks": rows,
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _write_json(results: dict) -> None:
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
