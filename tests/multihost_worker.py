"""One process of tests/test_multihost.py: 4 seeds trained over a seed mesh.

    python tests/multihost_worker.py OUT.npz EXPECTED_PROCESS_COUNT

Multi-process when the environment says so (JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID); process 0 alone writes OUT.npz with the
gathered params and metrics. Prints "rows ..." (this process's seeds) and
"suffix ..." for the test to check.
"""
import sys

import ntm_jax.training.distributed as distributed

MULTI = distributed.initialize_from_env()  # before anything starts the backend

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ntm_jax import NTMConfig
import ntm_jax.training as train  # noqa: E402
from ntm_jax.runs.chunks import make_chunk  # noqa: E402
from ntm_jax.tasks import CopyTask  # noqa: E402

SEEDS = 4
TASK = CopyTask(bits=4)
MODEL = NTMConfig(input_size=5, output_size=4, controller_size=8, memory_rows=8,
                  memory_width=4)
CONFIG = train.TrainConfig(seeds=SEEDS, steps=4, eval_every=2, batch_size=2,
                           max_length=3, test_lengths=(2,), eval_batch=4)


def flat(tree, prefix: str) -> dict:
  return {prefix + jax.tree_util.keystr(path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def main(out_path: str, expected_processes: int) -> None:
  assert MULTI == (expected_processes > 1), MULTI
  assert distributed.initialize_from_env() == MULTI  # idempotent
  assert jax.process_count() == expected_processes, jax.process_count()
  mesh = distributed.seed_mesh()
  assert mesh.size == len(jax.devices()), (mesh, jax.devices())
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
  states = distributed.put_seeds(train.init_states(MODEL, CONFIG, SEEDS), sharding)
  chunk = make_chunk(MODEL, CONFIG, TASK, mesh)  # the engine's own chunk
  for first_step in range(0, CONFIG.steps, CONFIG.eval_every):
    states, metrics, evals = chunk(states, np.int32(first_step))
  rows, local = distributed.local_seeds(states.params)
  params, metrics, evals = distributed.gather_seeds((states.params, metrics, evals))
  for mine, full in zip(jax.tree_util.tree_leaves(local), jax.tree_util.tree_leaves(params)):
    np.testing.assert_array_equal(mine, full[rows])  # the gather kept each row
  print("rows", " ".join(map(str, rows)))
  print("suffix", repr(distributed.process_suffix()))
  if distributed.is_main_process():
    np.savez(out_path, **flat(params, "params"), **flat(metrics, "metrics"),
             **flat(evals, "evals"))


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]))
