"""Training many seeds of one model at once: one seed's step and chunk
(`step`), what each step trains on (`draws`), the optimizer and the
learning-rate schedules (`optimizer`), evaluation (`evaluate`), how
seeds are laid over devices (`layout`, `devices`, `distributed`), and,
before anything compiles, the task's first batch against its contract
(`contract`) and the run's memory against the machine's (`memory_estimate`)."""
from ntm_jax.training.evaluate import (convergence_value, converge_metric,
                                       evaluate_lengths, evaluate_padded)
from ntm_jax.training.memory_estimate import check_fits
from ntm_jax.training.layout import (default_group_target, make_seed_parallel,
                                     padded_seed_count, seeds_per_group)
from ntm_jax.training.contract import check_first_batch
from ntm_jax.training.draws import curriculum_length
from ntm_jax.training.optimizer import learning_rate_scale, make_optimizer
from ntm_jax.training.step import (TrainState, init_state, init_states, train_chunk,
                                   train_step)
from ntm_jax.config import TrainConfig

__all__ = ["TrainConfig", "TrainState", "check_first_batch", "check_fits", "converge_metric", "convergence_value",
           "curriculum_length", "default_group_target", "evaluate_lengths",
           "evaluate_padded", "init_state", "init_states", "learning_rate_scale",
           "make_optimizer", "make_seed_parallel", "padded_seed_count", "seeds_per_group",
           "train_chunk", "train_step"]
