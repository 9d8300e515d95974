"""CPU backend set-up: XLA flags are added once and never override the user's."""
import os

import ntm_jax.training.devices as devices


def test_tune_cpu_flags_adds_every_flag_to_empty_xla_flags(monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  devices.tune_cpu_flags()
  assert os.environ["XLA_FLAGS"].split() == list(devices.CPU_XLA_FLAGS)


def test_tune_cpu_flags_keeps_the_users_value_of_an_option(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true --xla_dump_to=/tmp/x")
  devices.tune_cpu_flags()
  flags = os.environ["XLA_FLAGS"].split()
  assert "--xla_cpu_multi_thread_eigen=true" in flags
  assert "--xla_cpu_multi_thread_eigen=false" not in flags
  assert "--xla_dump_to=/tmp/x" in flags
  assert "--xla_cpu_experimental_ynn_fusion_type=" in flags


def test_tune_cpu_flags_twice_adds_nothing_more(monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  devices.tune_cpu_flags()
  once = os.environ["XLA_FLAGS"]
  devices.tune_cpu_flags()
  assert os.environ["XLA_FLAGS"] == once
