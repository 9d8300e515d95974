"""What each training step trains on: its sequence length and memory size,
drawn from keys made from the step number alone (all pure, traced).

Every seed of a run draws the same length at a step, so their time loops
run in lockstep under the seed vmap, and no seed's run depends on its
neighbours; a converged seed's longer length (`paired_step_lengths`) comes
from the same draw.
"""
import jax
import jax.numpy as jnp

from ntm_jax.config import TrainConfig

_LENGTH_KEY_SEED = 0x5EED


def curriculum_length(step, config: TrainConfig):
  """Longest training length at `step` (traced)."""
  if config.curriculum_steps == 0:
    return jnp.asarray(config.max_length, jnp.int32)
  progress = jnp.minimum(step / config.curriculum_steps, 1.0)
  span = config.max_length - config.curriculum_start
  return (config.curriculum_start + jnp.floor(progress * span)).astype(jnp.int32)


def step_length(step, config: TrainConfig):
  """The training length of global step `step` (int32, may be traced): one
  draw, uniform over [min_length, curriculum_length(step)], from a key that
  depends on `step` alone."""
  key = jax.random.fold_in(jax.random.PRNGKey(_LENGTH_KEY_SEED), step)
  return jax.random.randint(key, (), config.min_length,
                            curriculum_length(step, config) + 1)


def paired_step_lengths(step, config: TrainConfig):
  """(length, longer) of global step `step`, for max_length_while_converged:
  one step-keyed uniform draw placed on [min_length, curriculum_length(step)]
  and on [min_length, max_length_while_converged], so longer >= length and
  the time loop, run for `longer`, covers both."""
  key = jax.random.fold_in(jax.random.PRNGKey(_LENGTH_KEY_SEED + 1), step)
  u = jax.random.uniform(key)

  def place(longest):
    span = longest - config.min_length + 1
    return config.min_length + jnp.minimum(jnp.floor(u * span).astype(jnp.int32), span - 1)

  return (place(curriculum_length(step, config)),
          place(jnp.int32(config.max_length_while_converged)))


def step_memory_index(step, config: TrainConfig):
  """Index into train_memory_sizes of global step `step`: uniform, from a
  key that depends on `step` alone."""
  key = jax.random.fold_in(jax.random.PRNGKey(_LENGTH_KEY_SEED + 2), step)
  return jax.random.randint(key, (), 0, len(config.train_memory_sizes))


def padded_length(config: TrainConfig) -> int:
  """The longest training length of any seed: the static padding."""
  return max(config.max_length, config.max_length_while_converged)
