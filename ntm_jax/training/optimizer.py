"""The optimizer and the schedules every seed follows (all pure, traced)."""
import jax.numpy as jnp
import optax

from ntm_jax.config import TrainConfig


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
  """The update direction; the engine scales it by the seed's -learning_rate."""
  clip = optax.clip_by_global_norm(config.clip_norm)
  if config.optimizer == "adam":
    return optax.chain(clip, optax.scale_by_adam())
  # Graves 2013 RMSProp as the paper uses it: centred, eps inside the sqrt.
  return optax.chain(
      clip, optax.scale_by_stddev(decay=config.rmsprop_decay, eps=1e-4),
      optax.trace(decay=config.rmsprop_momentum))


def curriculum_length(step, config: TrainConfig):
  """Longest training length at `step` (traced)."""
  if config.curriculum_steps == 0:
    return jnp.asarray(config.max_length, jnp.int32)
  progress = jnp.minimum(step / config.curriculum_steps, 1.0)
  span = config.max_length - config.curriculum_start
  return (config.curriculum_start + jnp.floor(progress * span)).astype(jnp.int32)


def learning_rate_scale(step, config: TrainConfig):
  """Multiplier of the base learning rate at `step` (traced)."""
  if config.lr_schedule == "constant":
    return jnp.asarray(1.0, jnp.float32)
  progress = jnp.minimum(step / config.steps, 1.0)
  final = config.lr_final_fraction
  return final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


