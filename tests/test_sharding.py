"""Seeds sharded over several devices give the same per-seed results as one."""
import textwrap

import pytest

from conftest import run_python

_SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from ntm_jax import NTMConfig
    from ntm_jax.runs.chunks import make_chunk
    import ntm_jax.training as train
    import ntm_jax.training.distributed as distributed
    from ntm_jax.tasks import CopyTask

    assert len(jax.devices()) == 4, jax.devices()
    task = CopyTask(bits=3)
    model = NTMConfig(input_size=4, output_size=3, controller_size=16,
                      memory_rows=8, memory_width=4)

    def train_on(devices, seeds, config):
      mesh = distributed.seed_mesh(devices)
      padded = -(-seeds // devices) * devices
      states = train.init_states(model, config, padded)
      states = jax.device_put(states, jax.sharding.NamedSharding(
          mesh, jax.sharding.PartitionSpec("seeds")))
      chunk = make_chunk(model, config, task, mesh)
      for k in range(2):
        states, metrics, evals = chunk(states, np.int32(k * config.eval_every))
      shards = {d.device for d in jax.tree_util.tree_leaves(states.params)[0].addressable_shards}
      assert len(shards) == devices, shards
      return jax.device_get((states.params, metrics["loss"], evals["eval_bit_errors"]))

    for seeds in SEED_COUNTS:
      config = train.TrainConfig(seeds=seeds, steps=20, batch_size=2, max_length=3,
                                 eval_every=10, test_lengths=(2, 4), test_memory_size=8)
      one, four = train_on(1, seeds, config), train_on(4, seeds, config)
      for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(four)):
        np.testing.assert_allclose(a[:seeds], b[:seeds], rtol=1e-5, atol=1e-6)
    print("same")
""")


@pytest.mark.slow
def test_seeds_over_four_devices_match_one_device():
  # 8 seeds: 2 per device against 8 on one device (run in groups of 4 on a
  # CPU); 6 seeds: not a multiple of 4, so padded to 8 and the padding dropped.
  script = _SCRIPT.replace("SEED_COUNTS", "(8, 6)")
  result = run_python("-c", script, devices=4, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "same" in result.stdout
