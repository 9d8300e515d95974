"""The engine's logging interface (a recording fake) and the W&B backend.

The engine's side is read off conftest's shared `tiny_run`, trained with a
healthy recording logger and one that fails at its first chunk.

The W&B tests never reach the W&B server: every wandb process runs with its
folders in tmp_path, no credentials, and (online tests) a server URL on this
machine that refuses or never answers. Each runs in a subprocess with a
timeout, so a wandb that blocked would fail the test instead of hanging it.
"""
import glob
import json
import os
import pathlib
import socket
import textwrap

import numpy as np
import pytest

import ntm_jax.runs.wandb_logger as wandb_logger
from ntm_jax.runs.wandb_logger import WandbLogger, default_mode

from conftest import TINY_EXPERIMENT as CONFIG
from conftest import run_python

AGGREGATED = ("loss", "eval_loss", "eval_bit_errors")
CHUNK_STEPS = list(range(CONFIG.train.eval_every, CONFIG.train.steps + 1,
                         CONFIG.train.eval_every))


@pytest.fixture
def logged_run(tiny_run):
  """(out_dir, summary, healthy recorder, failing recorder, log messages)."""
  return (pathlib.Path(tiny_run.out_dir), tiny_run.summary, tiny_run.recorder,
          tiny_run.failing, tiny_run.messages)


def _metrics_by_step(out_dir):
  with open(out_dir / "metrics.jsonl") as f:
    return {row["step"]: row for row in map(json.loads, f)}


def test_the_engine_reports_config_then_each_chunk_then_the_summary(logged_run):
  out_dir, summary, recorder, _, _ = logged_run
  assert [c[0] for c in recorder.calls] == ["start"] + ["log_chunk"] * 4 + ["finish"]
  _, config, logged_dir = recorder.calls[0]
  assert {k: v for k, v in config.items() if k != "provenance"} == CONFIG.to_json()
  assert config["provenance"]["jax_version"]  # where the run came from, as in config.json
  with open(out_dir / "config.json") as f:
    assert json.loads(json.dumps(config)) == json.load(f)  # what config.json holds
  assert logged_dir == str(out_dir)
  assert [c[1] for c in recorder.calls[1:-1]] == CHUNK_STEPS == [50, 100, 150, 200]
  assert recorder.calls[-1][1] is summary


def test_chunk_aggregates_are_the_median_min_max_of_the_per_seed_metrics(logged_run):
  out_dir, _, recorder, _, _ = logged_run
  rows = _metrics_by_step(out_dir)
  for _, step, aggregate, per_seed in recorder.calls[1:-1]:
    row = rows[step]
    for name in ("loss", "bit_errors", "grad_norm", "eval_loss", "eval_bit_errors"):
      assert per_seed[name] == row[name], name
      assert len(per_seed[name]) == CONFIG.train.seeds
    for name in AGGREGATED:
      values = np.array(row[name], float)
      assert aggregate[f"{name}/median"] == pytest.approx(np.median(values))
      assert aggregate[f"{name}/min"] == pytest.approx(values.min())
      assert aggregate[f"{name}/max"] == pytest.approx(values.max())
    assert aggregate["converged"] == row["converged"]
    assert aggregate["diverged"] == row["diverged"]
    assert aggregate["steps_per_s"] > 0


def test_the_logged_summary_gives_summary_json_s_converged_fraction(logged_run):
  out_dir, _, recorder, _, _ = logged_run
  with open(out_dir / "summary.json") as f:
    on_disk = json.load(f)
  logged = wandb_logger.summary_data(recorder.calls[-1][1])
  agg = on_disk["aggregate"]
  assert logged["converged_fraction"] == agg["converged"] / agg["seeds"]
  assert logged["median_steps_to_converge"] == agg["steps_to_converge"]["median"]
  assert logged["diverged"] == agg["diverged"]


def test_a_logger_failing_mid_run_is_dropped_and_results_are_all_written(logged_run):
  out_dir, _, recorder, failing, messages = logged_run
  warnings = [m for m in messages if "FailsMidRun.log_chunk failed" in m]
  assert len(warnings) == 1 and "\n" not in warnings[0]
  assert [c[0] for c in failing.calls] == ["start", "log_chunk"]  # dropped after it raised
  assert [c[0] for c in recorder.calls][-1] == "finish"  # the others carry on
  assert os.path.exists(out_dir / "summary.json")
  assert sorted(os.listdir(out_dir / "checkpoints")) == ["150", "200"]
  assert len(_metrics_by_step(out_dir)) == CONFIG.train.steps


def test_chunk_data_names_per_seed_values_by_seed_number():
  data = wandb_logger.chunk_data({"loss/median": 1.5, "converged": 1},
                                 {"eval_bit_errors": [0.5, None, 2.0]}, base_seed=3)
  assert data == {"loss/median": 1.5, "converged": 1, "seed_3/eval_bit_errors": 0.5,
                  "seed_5/eval_bit_errors": 2.0}  # seed 4 diverged: no value


def test_default_mode_follows_wandb_mode(monkeypatch):
  monkeypatch.delenv("WANDB_MODE", raising=False)
  assert default_mode() == "off"
  for env, mode in [("offline", "offline"), ("dryrun", "offline"), ("online", "online"),
                    ("disabled", "off"), ("nonsense", "off")]:
    monkeypatch.setenv("WANDB_MODE", env)
    assert default_mode() == mode


def test_off_never_imports_or_starts_wandb(tmp_path):
  logger = WandbLogger("off")
  logger.start(CONFIG.to_json(), str(tmp_path))
  logger.log_chunk(50, {"converged": 0}, {"loss": [1.0, 1.0]})
  logger.finish(_FAKE_SUMMARY)
  assert logger.run is None and not os.path.exists(tmp_path / "wandb")


# W&B itself, offline and with an unusable server --------------------------------

_FAKE_SUMMARY = {
    "aggregate": {"seeds": 2, "converged": 1, "diverged": 0,
                  "steps_to_converge": {"q1": 50.0, "median": 50.0, "q3": 50.0},
                  "median_bit_errors_by_length": {"2": 0.25, "4": 1.5},
                  "seeds_under_1_bit_error_by_length": {"2": 2, "4": 0},
                  "median_bits_by_length": {"2": 0.5, "4": 3.0}},
    "seeds": [{"seed": 0, "converged_step": 50, "diverged": False,
               "bit_errors_by_length": {"2": 0.0, "4": 1.0}},
              {"seed": 1, "converged_step": None, "diverged": False,
               "bit_errors_by_length": {"2": 0.5, "4": 2.0}}]}

_SCRIPT = textwrap.dedent("""
    import json, sys
    from ntm_jax.runs.wandb_logger import Timeouts, WandbLogger
    mode, out_dir, summary = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    logger = WandbLogger(mode, project="ntm_jax_test", timeouts=Timeouts(init=3, connect=3))
    logger.start({"train": {"seed": 0}, "task": "copy"}, out_dir)
    logger.log_chunk(50, {"loss/median": 1.0, "converged": 1}, {"loss": [1.0, None]})
    logger.finish(summary)
    print("DONE", flush=True)
""")


def _wandb_env(tmp_path, **env):
  """No W&B settings, credentials or proxies from outside; its folders in tmp_path."""
  clean = {k: None for k in os.environ
           if k.startswith("WANDB_") or k.lower() in ("https_proxy", "http_proxy", "all_proxy")}
  clean.update(
      WANDB_SILENT="true", NETRC=str(tmp_path / "no_netrc"),
      WANDB_ERROR_REPORTING="false",  # wandb's own telemetry: nothing leaves the machine
      WANDB_DIR=str(tmp_path / "wandb_dir"), WANDB_CACHE_DIR=str(tmp_path / "cache"),
      WANDB_CONFIG_DIR=str(tmp_path / "config"), WANDB_DATA_DIR=str(tmp_path / "data"),
      WANDB_ARTIFACT_DIR=str(tmp_path / "artifacts"), **env)
  return clean


def _run_logger(tmp_path, mode, **env):
  """Runs start/log_chunk/finish in a fresh process; its stdout. The process
  timeout (60 s, beyond the 3 s init timeout and an offline init) fails a
  wandb that blocked."""
  out_dir = tmp_path / "run"
  out_dir.mkdir()
  result = run_python("-c", _SCRIPT, mode, str(out_dir), json.dumps(_FAKE_SUMMARY),
                      env=_wandb_env(tmp_path, **env), timeout=60)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "DONE" in result.stdout, result.stdout + result.stderr[-3000:]
  return result.stdout


def _offline_run(tmp_path):
  runs = glob.glob(str(tmp_path / "run" / "wandb" / "offline-run-*"))
  assert len(runs) == 1, os.listdir(tmp_path / "run")
  return runs[0]


def _assert_logged_offline(tmp_path, stdout):
  run = _offline_run(tmp_path)
  assert f"wandb sync {run}" in stdout  # the one line saying how to upload it
  (records,) = glob.glob(os.path.join(run, "run-*.wandb"))
  with open(records, "rb") as f:
    data = f.read()
  for key in (b"converged_fraction", b"median_steps_to_converge", b"seed_0/loss"):
    assert key in data, key  # the sweep metric reached the run summary
  assert glob.glob(os.path.join(run, "files", "media", "table", "generalisation_*.table.json"))


@pytest.mark.slow
def test_offline_wandb_writes_a_run_to_sync_later_without_blocking(tmp_path):
  stdout = _run_logger(tmp_path, "offline", WANDB_MODE="offline")
  _assert_logged_offline(tmp_path, stdout)


@pytest.mark.slow
def test_online_without_an_api_key_falls_back_to_offline(tmp_path):
  stdout = _run_logger(tmp_path, "online")
  assert "no API key" in stdout
  _assert_logged_offline(tmp_path, stdout)


def _closed_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_online_with_an_unreachable_server_falls_back_to_offline(tmp_path):
  stdout = _run_logger(
      tmp_path, "online", WANDB_API_KEY="0123456789abcdef0123456789abcdef01234567",
      WANDB_BASE_URL=f"http://127.0.0.1:{_closed_port()}")
  assert "cannot reach" in stdout
  _assert_logged_offline(tmp_path, stdout)


@pytest.mark.slow
def test_online_with_a_server_that_never_answers_is_bounded_by_the_init_timeout(tmp_path):
  # Accepts TCP connections (so the reachability check passes) but never replies.
  with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    stdout = _run_logger(
        tmp_path, "online",
        WANDB_API_KEY="0123456789abcdef0123456789abcdef01234567",
        WANDB_BASE_URL=f"http://127.0.0.1:{server.getsockname()[1]}")
  # The HTTP probe notices the silence before wandb.init would wait for it.
  assert "no answer from" in stdout and "logging offline instead" in stdout
  _assert_logged_offline(tmp_path, stdout)


@pytest.mark.slow
def test_the_cli_logs_offline_when_wandb_mode_says_so(tmp_path):
  """--wandb defaults to WANDB_MODE; main_for builds the logger from the flags."""
  out_dir = tmp_path / "cli_run"
  flags = ["--steps=50", "--eval_every=50", "--checkpoint_every=50", "--seeds=2",
           "--batch_size=2", "--controller_size=8", "--memory_rows=8", "--memory_width=4",
           "--max_length=3", "--test_lengths=2,4", "--test_memory_size=8", "--test_batch=4",
           "--eval_batch=4", "--noprogress", "--noplots", f"--out_dir={out_dir}"]
  result = run_python("-m", "experiments.copy", *flags,
                      env=_wandb_env(tmp_path, WANDB_MODE="offline"))
  assert result.returncode == 0, result.stderr[-3000:]
  runs = glob.glob(str(out_dir / "wandb" / "offline-run-*"))
  assert len(runs) == 1 and f"wandb sync {runs[0]}" in result.stdout
  assert os.path.exists(out_dir / "summary.json")
