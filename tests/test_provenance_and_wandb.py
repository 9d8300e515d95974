"""Provenance in config.json, diverged seeds out of the summary's medians, and
the W&B reachability probe against servers on this machine."""
import http.server
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

from ntm_jax.config import ExperimentConfig, NTMConfig
import ntm_jax.runs.provenance as provenance
import ntm_jax.runs.summary as summary_lib
import ntm_jax.runs.wandb_logger as wandb_logger
from tests.conftest import TINY_EXPERIMENT

# Provenance -------------------------------------------------------------------


def test_provenance_records_the_software_the_machine_and_the_command():
  import jax
  import jaxlib
  import ntm_jax
  record = provenance.collect(devices=2, seeds_per_group=3)
  assert record["ntm_jax_version"] == ntm_jax.__version__
  assert (record["jax_version"], record["jaxlib_version"]) == (jax.__version__,
                                                               jaxlib.__version__)
  assert record["backend"] == jax.default_backend()
  assert (record["devices"], record["seeds_per_group"]) == (2, 3)
  assert record["device_count"] == jax.device_count()
  assert record["python_version"] == platform.python_version()
  assert record["argv"] == sys.argv
  assert record["hostname"] == socket.gethostname()
  assert "git" in record  # a dict in a checkout, None in an installed copy
  assert record["xla_flags"] == os.environ.get("XLA_FLAGS", "")
  cpuinfo = pathlib.Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo") else ""
  if "model name" in cpuinfo:
    assert record["cpu"] and f"model name\t: {record['cpu']}\n" in cpuinfo
  else:
    assert record["cpu"] == platform.processor()
  json.dumps(record)  # all of it goes into config.json


def _git(cwd, *args):
  return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                        text=True).stdout.strip()


def test_git_state_names_the_commit_and_whether_tracked_files_changed(tmp_path):
  _git(tmp_path, "init", "-q")
  (tmp_path / "a.py").write_text("x = 1\n")
  _git(tmp_path, "add", "a.py")
  _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
  head = _git(tmp_path, "rev-parse", "HEAD")
  assert provenance.git_state(str(tmp_path)) == {"commit": head, "dirty": False}
  (tmp_path / "untracked.txt").write_text("not part of the code\n")
  assert provenance.git_state(str(tmp_path))["dirty"] is False
  (tmp_path / "a.py").write_text("x = 2\n")
  assert provenance.git_state(str(tmp_path)) == {"commit": head, "dirty": True}
  # A package folder inside someone else's repository has no commit of its own.
  (tmp_path / "pkg").mkdir()
  assert provenance.git_state(str(tmp_path / "pkg")) is None


def test_git_state_outside_a_checkout_is_none(tmp_path):
  assert provenance.git_state(str(tmp_path)) is None


def test_config_json_with_provenance_loads_back_and_keeps_earlier_ones(tmp_path):
  first = provenance.config_json(TINY_EXPERIMENT, str(tmp_path), 1, 2)
  assert first["provenance"]["devices"] == 1 and "earlier" not in first["provenance"]
  assert ExperimentConfig.from_json(first) == TINY_EXPERIMENT
  (tmp_path / "config.json").write_text(json.dumps(first))
  second = provenance.config_json(TINY_EXPERIMENT, str(tmp_path), 2, 1)
  (tmp_path / "config.json").write_text(json.dumps(second))
  third = provenance.config_json(TINY_EXPERIMENT, str(tmp_path), 2, 2)
  assert [p["devices"] for p in third["provenance"]["earlier"]] == [1, 2]
  assert third["provenance"]["seeds_per_group"] == 2
  assert ExperimentConfig.from_json(third) == TINY_EXPERIMENT


def test_config_json_holds_every_setting_including_plots():
  data = provenance.config_json(TINY_EXPERIMENT, "/nonexistent", 1, 1)
  assert data["plots"] == TINY_EXPERIMENT.plots
  assert data["checkpoint_every"] == TINY_EXPERIMENT.checkpoint_every
  assert data["train"]["eval_every"] == TINY_EXPERIMENT.train.eval_every


# Diverged seeds and the summary ----------------------------------------------


def _summary(diverged):
  """Four seeds, test lengths 5 and 10; seed 3 is the odd one out: it
  converged first (step 50), then diverged (when `diverged`) and its numbers
  are far from the others'."""
  config = types.SimpleNamespace(
      task="copy", model_kind="ntm", model=NTMConfig(input_size=9, output_size=8,
                                                     memory_rows=16),
      train=types.SimpleNamespace(
          seeds=4, seed=0, test_lengths=(5, 10), converge_threshold=0.1, test_memory_size=16,
          eval_every=50, eval_batch=8, min_length=1, max_length=5, eval_memory_size=None))
  minus = np.array([-1, -1, -1, -1])
  states = types.SimpleNamespace(
      first_converged_step=np.array([100, 300, -1, 50]),
      converged_step=np.array([100, 300, -1, 50]),
      diverged=np.array([False, False, False, diverged]),
      diverged_step=np.array([-1, -1, -1, 400 if diverged else -1]),
      collapses=np.zeros(4, int), best_step=minus, best_eval=np.zeros(4),
      best_cost=np.zeros(4), last_eval=np.array([0.0, 0.0, 3.0, 5e14 if diverged else 0.0]))
  results = {"main": {
      "bit_errors": np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [100.0, 0.5]]),
      "bits": np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0], [5e14, 5e14]])}}
  timing = {"wall_s": 1.0, "compile_s": 0.5, "train_s": 0.4, "test_s": 0.1,
            "outside_train_fraction": 0.1}
  return summary_lib.summarize(config, states, results, timing, param_count=1)


def test_a_diverged_seed_stays_out_of_the_medians_counts_and_quartiles():
  agg = _summary(diverged=True)["aggregate"]
  assert agg["diverged"] == 1
  # Medians over seeds 0-2 only: at L5 {0, 2, 4}, at L10 {1, 3, 5}.
  assert agg["median_bit_errors_by_length"] == {"5": 2.0, "10": 3.0}
  assert agg["median_bits_by_length"] == {"5": 20.0, "10": 20.0}
  # Seed 3's 0.5 bit errors at L10 would count; its parameters are frozen junk.
  assert agg["seeds_under_1_bit_error_by_length"] == {"5": 1, "10": 0}
  # Converged: seeds 0 and 1 (steps 100 and 300), not seed 3's step 50.
  assert agg["converged"] == 2
  assert agg["steps_to_converge"]["median"] == 200.0
  metrics = summary_lib.sweep_metrics(_summary(diverged=True))
  assert metrics["converged_fraction"] == 0.5
  assert metrics["median_steps_to_converge"] == 200.0
  assert metrics["diverged_fraction"] == 0.25


def test_the_same_seed_not_diverged_counts_everywhere():
  # The control: the exclusion above is the divergence, not the numbers.
  agg = _summary(diverged=False)["aggregate"]
  assert agg["median_bit_errors_by_length"] == {"5": 3.0, "10": 2.0}
  assert agg["seeds_under_1_bit_error_by_length"] == {"5": 1, "10": 1}
  assert agg["converged"] == 3
  assert agg["steps_to_converge"]["median"] == 100.0


def test_chunk_report_leaves_diverged_seeds_out_of_median_min_max():
  row = {"converged": 0, "diverged": 1, "train_length": 3,
         "eval_loss": [1.0, 2.0, 3.0, 5e14], "loss": [4.0, 1.0, 2.0, None]}
  aggregate, per_seed = summary_lib.chunk_report(row, 2.0, 10,
                                                 diverged=[False, False, False, True])
  assert aggregate["eval_loss/median"] == 2.0
  assert aggregate["eval_loss/max"] == 3.0
  assert aggregate["loss/median"] == 2.0
  assert per_seed["eval_loss"][3] == 5e14  # still reported, per seed
  everyone, _ = summary_lib.chunk_report(row, 2.0, 10)
  assert everyone["eval_loss/median"] == 2.5


# W&B: the reachability probe --------------------------------------------------


@pytest.fixture
def silent_server():
  """Accepts connections and never sends a byte."""
  with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def answering_server():
  """Answers every request, here with 404 (any status is an answer)."""
  server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}"
  server.shutdown()
  server.server_close()


@pytest.fixture
def no_proxy(monkeypatch):
  for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
               "all_proxy"):
    monkeypatch.delenv(name, raising=False)


def test_a_server_that_accepts_and_never_answers_is_unreachable(silent_server, no_proxy):
  reason = wandb_logger._unreachable(silent_server, timeout=1.0)
  assert reason is not None and ("no answer" in reason or "timed out" in reason)


def test_a_server_that_answers_is_reachable(answering_server, no_proxy):
  assert wandb_logger._unreachable(answering_server, timeout=5.0) is None


def test_a_closed_port_is_unreachable(no_proxy):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  reason = wandb_logger._unreachable(f"http://127.0.0.1:{port}", timeout=5.0)
  assert reason is not None and "Connection" in reason


def test_online_with_credentials_and_a_silent_server_chooses_offline(
    tmp_path, silent_server, no_proxy, monkeypatch):
  """Credentials present, the server silent: offline, with the probe's
  reason in one line (test_wandb_logger runs the whole start-up)."""
  monkeypatch.setenv("WANDB_BASE_URL", silent_server)
  monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
  monkeypatch.setenv("WANDB_DIR", str(tmp_path))
  monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
  monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
  messages = []
  logger = wandb_logger.WandbLogger("online", project="ntm_jax_test", log=messages.append,
                                    timeouts=wandb_logger.Timeouts(connect=1.0))
  assert logger._online_or_offline() == "offline"
  assert len(messages) == 1 and "cannot reach" in messages[0]


def test_cpu_vector_features_are_read_from_the_first_flags_line(tmp_path):
  from ntm_jax.runs import provenance
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n"
                     "flags\t\t: fpu vme sse2 sse4_1 avx2 fma avx512f avx512_bf16 ht\n"
                     "processor\t: 1\nflags\t\t: fpu amx_tile\n")
  assert provenance.cpu_vector_features(str(cpuinfo)) == [
      "avx2", "avx512_bf16", "avx512f", "fma", "sse4_1"]
  arm = tmp_path / "arm"
  arm.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm sve crc32\n")
  assert provenance.cpu_vector_features(str(arm)) == ["asimd", "sve"]
  assert provenance.cpu_vector_features(str(tmp_path / "missing")) == []
