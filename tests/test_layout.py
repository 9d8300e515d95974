"""A seed's results depend only on its seed and settings, not on the layout:
bit-identical on 1 or 2 CPU devices, alone or among other seeds."""
import json

import numpy as np
import pytest

from conftest import run_python

# One run per (devices, seeds, seed); prints seed 3's final params and its
# metrics rows as JSON.
_RUN = r"""
import json, sys
import jax
import numpy as np
from ntm_jax import NTMConfig, TrainConfig, ExperimentConfig
from ntm_jax.runs import engine, checkpoints
devices, seeds, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
config = ExperimentConfig(
    task="copy", task_options=(("bits", 3),),
    model=NTMConfig(input_size=4, output_size=3, controller_size=16, memory_rows=8,
                    memory_width=4),
    train=TrainConfig(seeds=seeds, seed=seed, steps=20, eval_every=10, max_length=3,
                      test_lengths=(3, 5), test_batch=4, eval_batch=4, test_memory_size=8),
    plots=False)
summary = engine.run(config, out, devices=devices, progress=False, log=lambda _: None)
_, states = checkpoints.load_run(out)
index = 3 - seed
leaves = [np.asarray(x[index]).ravel().tolist() for x in jax.tree_util.tree_leaves(states.params)]
metrics = [row["loss"][index] for row in
           map(json.loads, open(out + "/metrics.jsonl"))]
print(json.dumps({"params": leaves, "loss": metrics,
                  "test": summary["seeds"][index]["bits_by_length"]}))
"""


def _seed3(tmp_path, devices, seeds, seed):
  out = tmp_path / f"d{devices}_s{seeds}_b{seed}"
  result = run_python("-c", _RUN, str(devices), str(seeds), str(seed), str(out), devices=2)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_seed_results_do_not_depend_on_devices_or_neighbours(tmp_path):
  alone = _seed3(tmp_path, 1, 1, 3)
  one_device = _seed3(tmp_path, 1, 4, 0)
  two_devices = _seed3(tmp_path, 2, 4, 0)
  among_nine = _seed3(tmp_path, 2, 9, 0)
  for other in (one_device, two_devices, among_nine):
    assert other["loss"] == alone["loss"]
    assert other["test"] == alone["test"]
    for a, b in zip(alone["params"], other["params"]):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
