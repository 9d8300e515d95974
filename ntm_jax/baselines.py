"""The LSTM baseline, with the same init / apply as the NTM.

    config = ntm_jax.baselines.LSTMConfig(input_size=9, output_size=8)
    params = ntm_jax.init(rng, config)
    logits, _ = ntm_jax.apply(params, inputs, config)
"""
from ntm_jax.config import LSTMConfig
from ntm_jax.model import LSTMCell, apply, init, param_count

__all__ = ["LSTMConfig", "LSTMCell", "init", "apply", "param_count"]
