"""The model floor: addressing -> memory -> heads -> controllers -> cells,
and the public `init` / `apply` through the model protocol (`base.Model`)."""
import ntm_jax.models.addressing as addressing
import ntm_jax.models.heads as heads
import ntm_jax.models.memory as memory
from ntm_jax.models.api import (MODELS, apply, apply_step_by_step, cell_memory_size,
                                get_model, init, memory_size_for, param_count)
from ntm_jax.models.lstm import LSTM, LSTMCell
from ntm_jax.models.ntm import NTM, NTMCell, NTMState

__all__ = ["MODELS", "LSTM", "LSTMCell", "NTM", "NTMCell", "NTMState", "addressing",
           "apply", "apply_step_by_step", "cell_memory_size", "get_model", "heads", "init",
           "memory", "memory_size_for", "param_count"]
