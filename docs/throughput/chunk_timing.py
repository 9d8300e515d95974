"""Times the compiled training chunk of the copy NTM alone (no engine, no
evaluation bookkeeping around it): RESULTS.md, "Throughput", the training
step tables.

    BATCH=8 PYTHONPATH=. python docs/throughput/chunk_timing.py SEEDS DEVICES GROUP ROWS

Prints the compile time and the median of two 100-step chunks after a
warm-up chunk, with SEEDS seeds over DEVICES CPU devices in vmapped groups
of GROUP seeds, ROWS memory rows and BATCH sequences per seed per step.
"""
import ntm_jax.training.devices as devices

devices.use_all_cpu_cores()

import functools  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ntm_jax import NTMConfig  # noqa: E402
import ntm_jax.training as train  # noqa: E402
import ntm_jax.training.distributed as distributed  # noqa: E402
from ntm_jax.tasks import CopyTask  # noqa: E402


def main():
  seeds, num_devices, group, rows = (int(a) for a in sys.argv[1:5])
  steps = 100
  task = CopyTask()
  model = NTMConfig(task.input_size, task.output_size, memory_rows=rows)
  config = train.TrainConfig(seeds=seeds, steps=steps, eval_every=steps,
                             batch_size=int(os.environ.get("BATCH", "4")))
  mesh = distributed.seed_mesh(num_devices)
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
  states = jax.device_put(train.init_states(model, config, seeds), sharding)
  chunk = train.make_seed_parallel(
      functools.partial(train.train_chunk, task=task, model_config=model, config=config),
      mesh, group_target=group, model_config=model, in_axes=(0, None))
  start = time.perf_counter()
  compiled = chunk.lower(states, np.int32(0)).compile()
  compile_s = time.perf_counter() - start
  states = jax.block_until_ready(compiled(states, np.int32(0)))[0]
  times = []
  for k in range(1, 3):
    start = time.perf_counter()
    states = jax.block_until_ready(compiled(states, np.int32(k * steps)))[0]
    times.append(time.perf_counter() - start)
  print(f"seeds {seeds} devices {num_devices} group {group} rows {rows} batch "
        f"{config.batch_size}: compile {compile_s:.1f} s, chunk {np.median(times):.2f} s "
        f"({', '.join(f'{t:.2f}' for t in times)})", flush=True)


if __name__ == "__main__":
  main()
