"""The shipped pretrained copy model works on a fresh install, no training."""
import os
import subprocess
import sys

import jax

from ntm_jax import pretrained, train
from ntm_jax.tasks import make_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pretrained_copy_model_copies_length_20_with_under_one_bit_error():
  model_config, params = pretrained.load("copy")
  info = pretrained.info("copy")
  task = make_task(info["task"], **info["task_options"])
  _, errors = train.evaluate_lengths(params, jax.random.PRNGKey(123), task, model_config,
                                     [20], 32, memory_size=128)
  assert float(errors[0]) < 1.0


def test_inspect_pretrained_copy_draws_without_training(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "experiments.inspect", "--pretrained=copy",
       f"--out_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=ROOT))
  assert result.returncode == 0, result.stderr[-2000:]
  assert "at length 20" in result.stdout
  assert os.path.getsize(tmp_path / "heads_L20.png") > 1000
