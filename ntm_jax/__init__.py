"""ntm_jax: Neural Turing Machines in JAX (Graves, Wayne & Danihelka 2014).

    config = ntm_jax.NTMConfig(input_size=9, output_size=8)
    params = ntm_jax.init(jax.random.PRNGKey(0), config)
    logits, trace = ntm_jax.apply(params, inputs, config, return_trace=True)
"""
from ntm_jax import addressing, baselines, heads, memory
from ntm_jax.config import LSTMConfig, NTMConfig
from ntm_jax.model import NTMCell, NTMState, apply, init, param_count

__all__ = ["NTMConfig", "LSTMConfig", "NTMCell", "NTMState", "init", "apply",
           "param_count", "addressing", "memory", "heads", "baselines"]
__version__ = "0.1.0"
