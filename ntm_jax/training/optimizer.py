"""The optimizer and the learning-rate schedule every seed follows (all pure, traced)."""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ntm_jax.config import TrainConfig

# Time constant of the running gradient norm, in steps: long enough that one
# spike barely moves it, short enough to follow a converged seed's gradients
# down within a few hundred steps of converging.
_SPIKE_NORM_DECAY = 0.99


def make_optimizer(config: TrainConfig) -> optax.GradientTransformationExtraArgs:
  """The update direction; the engine scales it by the seed's -learning_rate.
  Its update takes the extra argument `converged` (the seed's flag)."""
  clip = optax.clip_by_global_norm(config.clip_norm)
  if config.clip_value > 0:  # per element first, as Graves et al. clip gradients
    clip = optax.chain(optax.clip(config.clip_value), clip)
  if config.optimizer == "adam":
    optimizer = optax.chain(clip, optax.scale_by_adam())
  else:
    # Graves 2013 RMSProp as the paper uses it: centred, eps inside the sqrt.
    optimizer = optax.chain(
        clip, optax.scale_by_stddev(decay=config.rmsprop_decay, eps=1e-4),
        optax.trace(decay=config.rmsprop_momentum))
  if config.skip_spikes_while_converged > 0:
    optimizer = skip_spikes_while_converged(optimizer, config.skip_spikes_while_converged)
  return optimizer


class SpikeSkipState(NamedTuple):
  inner: optax.OptState     # the wrapped optimizer's state
  log_norm_mean: jax.Array  # [] running mean of log(gradient norm) of applied
                            # steps, not bias-corrected
  applied: jax.Array        # [] int32, steps applied
  skipped: jax.Array        # [] int32, steps skipped


def skip_spikes_while_converged(inner: optax.GradientTransformation, factor: float,
                                decay: float = _SPIKE_NORM_DECAY
                                ) -> optax.GradientTransformationExtraArgs:
  """`inner`, except that while `converged` (an extra argument of update) a
  step whose gradient norm exceeds `factor` times the running geometric
  mean of the applied steps' norms is skipped: a zero update and the state
  unchanged but for the count of skipped steps.

  Why: a converged seed's gradients are tiny, except on the rare batch it
  gets wrong, whose gradient is thousands of times larger. Adam divides by
  the running size of each coordinate's gradient, so such a gradient moves
  every parameter by a few learning rates whatever the clip norm, and a few
  hundred of them can carry a converged seed into a region it never leaves.
  The bound follows the seed's own gradients (on a log scale, so no single
  step moves it much); a seed that really gets worse fails its evaluations,
  stops counting as converged, and trains on every step again.
  """
  def init_fn(params):
    int0 = jnp.zeros((), jnp.int32)
    return SpikeSkipState(inner=inner.init(params), log_norm_mean=jnp.zeros((), jnp.float32),
                          applied=int0, skipped=int0)

  def update_fn(updates, state, params=None, *, converged=False, **extra_args):
    norm = optax.tree.norm(updates)
    # Bias-corrected as in Adam: the mean starts at 0 (a norm of 1).
    correction = 1.0 - decay ** jnp.maximum(state.applied, 1).astype(jnp.float32)
    bound = factor * jnp.exp(state.log_norm_mean / correction)
    skip = jnp.asarray(converged) & (state.applied > 0) & (norm > bound)
    new_updates, inner_state = optax.with_extra_args_support(inner).update(
        updates, state.inner, params, **extra_args)
    log_norm = jnp.log(jnp.maximum(norm, jnp.finfo(jnp.float32).tiny))
    applied = SpikeSkipState(inner=inner_state,
                             log_norm_mean=decay * state.log_norm_mean + (1 - decay) * log_norm,
                             applied=state.applied + 1, skipped=state.skipped)
    new_state = jax.tree_util.tree_map(lambda old, new: jnp.where(skip, old, new),
                                       state._replace(skipped=state.skipped + 1), applied)
    new_updates = jax.tree_util.tree_map(lambda u: jnp.where(skip, jnp.zeros_like(u), u),
                                         new_updates)
    return new_updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def learning_rate_scale(step, config: TrainConfig):
  """Multiplier of the base learning rate at `step` (traced)."""
  if config.lr_schedule == "constant":
    return jnp.asarray(1.0, jnp.float32)
  progress = jnp.minimum(step / config.steps, 1.0)
  final = config.lr_final_fraction
  return final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


