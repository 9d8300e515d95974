"""ntm_jax: Neural Turing Machines in JAX (Graves, Wayne & Danihelka 2014).

    config = ntm_jax.NTMConfig(input_size=9, output_size=8)
    params = ntm_jax.init(jax.random.PRNGKey(0), config)
    logits, trace = ntm_jax.apply(params, inputs, config, return_trace=True)

    summary = ntm_jax.train_seeds("copy", config, ntm_jax.TrainConfig(seeds=8))

Packages, lowest first (imports only point down): `config`; `models`
(addressing, memory, heads, controllers, cells, init/apply); `tasks`;
`training` (one seed's step, optimizer, evaluation, seed layout); `runs` (the
run directory, the engine, summaries, loggers); `analysis` (plots,
inspection, FLOP counts); `pretrained`. Only `config` loads with the package
(it imports no jax); everything else loads on first use, so the W&B logger
and the sweep runner start without jax.
"""
import importlib

from ntm_jax.config import ExperimentConfig, LSTMConfig, NTMConfig, TrainConfig

__version__ = "0.2.0"

# Public name -> the module that defines it.
_LAZY = {
    "init": "ntm_jax.models", "apply": "ntm_jax.models", "param_count": "ntm_jax.models",
    "NTMCell": "ntm_jax.models", "NTMState": "ntm_jax.models",
    "addressing": "ntm_jax.models", "memory": "ntm_jax.models", "heads": "ntm_jax.models",
    "train_seeds": "ntm_jax.api",
}
_SUBPACKAGES = ("models", "tasks", "training", "runs", "analysis", "pretrained", "api")

__all__ = ["ExperimentConfig", "LSTMConfig", "NTMConfig", "TrainConfig", *_LAZY,
           *_SUBPACKAGES]


def __getattr__(name):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  if name in _SUBPACKAGES:
    return importlib.import_module(f"ntm_jax.{name}")
  raise AttributeError(f"module 'ntm_jax' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(__all__))
