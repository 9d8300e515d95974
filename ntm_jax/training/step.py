"""One seed's training: its state, one optimisation step, and a chunk of
steps followed by an evaluation and the convergence bookkeeping.

Everything here works on ONE seed's `TrainState`; `layout.make_seed_parallel`
vmaps it over a leading seed axis. Python runs once per chunk, never per step.
"""
import functools
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import optax

from ntm_jax import models
from ntm_jax.config import TrainConfig
from ntm_jax.tasks import base as task_base
import ntm_jax.training.evaluate as evaluate
from ntm_jax.training.draws import (curriculum_length, padded_length, paired_step_lengths,
                                    step_length, step_memory_index)
from ntm_jax.training.optimizer import learning_rate_scale, make_optimizer


@flax.struct.dataclass
class TrainState:
  """One seed's training state. Under the engine every leaf gains a leading
  seed axis [S, ...]."""
  params: Any
  opt_state: Any
  best_params: Any          # params at the best evaluation so far (see
                            # `_update_convergence` for what "best" means)
  rng: jax.Array            # PRNG key
  step: jax.Array           # [] int32, steps taken
  learning_rate: jax.Array  # [] float32: per seed, so a grid is one more axis
  diverged: jax.Array       # [] bool: a non-finite loss/gradient/update was seen
  diverged_step: jax.Array  # [] int32, -1 if never
  converged_step: jax.Array  # [] int32, -1 unless converged now
  first_converged_step: jax.Array  # [] int32, start of the first streak that converged
  streak_start: jax.Array   # [] int32, step of the current below-threshold streak
  below_count: jax.Array    # [] int32, evaluations in a row below threshold
  above_count: jax.Array    # [] int32, evaluations in a row above threshold
  collapses: jax.Array      # [] int32, times a converged seed lost it
  best_eval: jax.Array      # [] float32, convergence value of best_params' evaluation
  best_cost: jax.Array      # [] float32, eval cost in bits of best_params' evaluation
  best_step: jax.Array      # [] int32, step best_params were evaluated at, -1 if never
  last_eval: jax.Array      # [] float32, latest eval convergence value
  # With config.average_while_converged: the parameters that are evaluated
  # and reported, a moving average of `params` while the seed is converged
  # and `params` itself otherwise. None when off (older runs' format).
  average_params: Any = None
  # With config.restore_optimizer_state: the optimizer state at the best
  # evaluation, restored with best_params. None when off.
  best_opt_state: Any = None


def init_state(rng: jax.Array, model_config, config: TrainConfig,
               learning_rate=None, optimizer: Optional[optax.GradientTransformation] = None
               ) -> TrainState:
  """A fresh TrainState for one seed."""
  init_rng, train_rng = jax.random.split(rng)
  params = models.init(init_rng, model_config)
  lr = config.learning_rate if learning_rate is None else learning_rate
  int0 = jnp.zeros((), jnp.int32)
  opt_state = (optimizer or make_optimizer(config)).init(params)
  return TrainState(
      params=params, opt_state=opt_state,
      best_params=params, rng=train_rng, step=int0,
      learning_rate=jnp.asarray(lr, jnp.float32),
      diverged=jnp.zeros((), bool), diverged_step=int0 - 1,
      converged_step=int0 - 1, first_converged_step=int0 - 1, streak_start=int0 - 1,
      below_count=int0, above_count=int0, collapses=int0,
      best_eval=jnp.asarray(jnp.inf, jnp.float32),
      best_cost=jnp.asarray(jnp.inf, jnp.float32), best_step=int0 - 1,
      last_eval=jnp.asarray(jnp.nan, jnp.float32),
      average_params=params if config.average_while_converged > 0 else None,
      best_opt_state=opt_state if config.restore_optimizer_state else None)


def init_states(model_config, config: TrainConfig, num_seeds: Optional[int] = None,
                optimizer: Optional[optax.GradientTransformation] = None):
  """TrainStates for seeds config.seed .. config.seed + num_seeds - 1, stacked."""
  num_seeds = config.seeds if num_seeds is None else num_seeds
  keys = jax.vmap(jax.random.PRNGKey)(config.seed + jnp.arange(num_seeds))
  return jax.jit(jax.vmap(
      lambda k: init_state(k, model_config, config, optimizer=optimizer)))(keys)


def _tree_all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
  return jnp.all(jnp.stack(leaves))


def _tree_where(condition, on_true, on_false):
  return jax.tree_util.tree_map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)


def train_step(state: TrainState, task, model_config, config: TrainConfig,
               optimizer: Optional[optax.GradientTransformation] = None, step=None):
  """One optimisation step of one seed: (state, metrics) -> (state, metrics).

  Every sequence of the batch has the step's one length (`step_length`),
  and the model runs only its `task.sequence_steps(length)` time steps.
  With `max_length_while_converged`, the step's length is drawn on two
  ranges at once (`paired_step_lengths`): a converged seed takes the longer,
  and every seed's time loop runs its steps. The trip count stays a
  function of the step alone (shared under the seed vmap; a per-seed trip
  count would make the batched loop select its whole carry every step), and
  the steps past a seed's own sequence only add masked outputs and zero
  gradients.

  step: the global step number (int32 scalar), equal to state.step; pass it
  unbatched under the seed vmap (`train_chunk`'s `start`) so the length,
  and with it the time loop's trip count, is shared by the seeds. None:
  state.step (the same lengths; batched, the loops run in lockstep anyway).

  optimizer: None for the config's (its update is a direction, scaled here
  by the seed's learning rate, the schedule, and `lr_after_converged` while
  the seed is converged); or any optax transformation,
  whose updates are applied as they are (it carries its own learning rate).

  A seed whose loss, gradients or updated parameters are non-finite is marked
  diverged and frozen: its update is skipped from then on, so it can never
  poison the other seeds sharing the program.
  """
  step = state.step if step is None else step
  rng, _, data_rng = jax.random.split(state.rng, 3)
  converged = state.converged_step >= 0
  longest = curriculum_length(step, config)
  length = run_length = step_length(step, config)
  if config.max_length_while_converged:
    # A converged seed practises on sequences that fill more of its memory:
    # at test, a long sequence leaves few rows unwritten (#15).
    length, run_length = paired_step_lengths(step, config)
    longest = jnp.where(converged, config.max_length_while_converged, longest)
    length = jnp.where(converged, run_length, length)
  inputs, targets, mask = task.sample(data_rng, config.batch_size, length,
                                      padded_length(config))

  def loss_and_grads(memory_size, params):
    def loss_fn(params):
      logits, _ = models.apply(params, inputs, model_config, memory_size=memory_size,
                               rng=jax.random.fold_in(data_rng, 1),
                               length=task.sequence_steps(run_length))
      metrics = task_base.sequence_metrics(task, logits, targets, mask)
      return jnp.mean(metrics["bits"]), jnp.mean(metrics["bit_errors"])
    return jax.value_and_grad(loss_fn, has_aux=True)(params)

  if config.train_memory_sizes:
    # The step's memory size is a step-keyed draw too: unbatched under the
    # seed vmap, so the switch runs one branch.
    (loss, bit_errors), grads = jax.lax.switch(
        step_memory_index(step, config),
        [functools.partial(loss_and_grads, n) for n in config.train_memory_sizes],
        state.params)
  else:
    (loss, bit_errors), grads = loss_and_grads(None, state.params)
  if optimizer is None:
    direction, opt_state = make_optimizer(config).update(
        grads, state.opt_state, state.params, converged=converged)
    learning_rate = state.learning_rate * learning_rate_scale(state.step, config)
    learning_rate = learning_rate * jnp.where(converged, config.lr_after_converged, 1.0)
    params = jax.tree_util.tree_map(lambda p, d: p - learning_rate * d,
                                    state.params, direction)
  else:
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
  healthy = (~state.diverged & jnp.isfinite(loss) & _tree_all_finite(grads)
             & _tree_all_finite(params))
  newly_diverged = ~state.diverged & ~healthy
  params = _tree_where(healthy, params, state.params)
  if state.average_params is not None:
    # Polyak averaging (an exponential moving average of the iterates) of a
    # converged seed: its evaluations and reported parameters are less
    # subject to the noise of its latest steps.
    decay = config.average_while_converged
    average = jax.tree_util.tree_map(lambda a, p: decay * a + (1 - decay) * p,
                                     state.average_params, params)
    state = state.replace(average_params=_tree_where(converged, average, params))
  state = state.replace(
      params=params,
      opt_state=_tree_where(healthy, opt_state, state.opt_state),
      rng=rng, step=state.step + 1,
      diverged=state.diverged | newly_diverged,
      diverged_step=jnp.where(newly_diverged, state.step, state.diverged_step))
  metrics = {"loss": loss, "bit_errors": bit_errors,
             "grad_norm": optax.tree.norm(grads), "train_length": longest}
  return state, metrics


def evaluated_params(state: TrainState):
  """The parameters a seed's evaluations judge: its moving average when
  `average_while_converged` is on, else its latest parameters."""
  return state.params if state.average_params is None else state.average_params


def _update_convergence(state: TrainState, eval_errors, config: TrainConfig,
                        eval_cost=None) -> TrainState:
  """Per-seed bookkeeping after an evaluation at state.step.

  Args:
    eval_errors: the task's convergence value (see `convergence_value`).
    eval_cost: the evaluation's mean cost in bits per sequence (None: the
      same as eval_errors).

  The best parameters are those of the evaluation with the lowest
  convergence value, ties broken by the lower cost in bits; only a strict
  improvement replaces them. Bit errors on a few dozen sequences are often
  exactly 0 for many evaluations in a row, and keeping the latest of those
  let a seed sliding into a collapse replace good parameters with worse
  ones; the cost in bits is continuous and rises before errors appear.
  An evaluation after the seed diverged is never its best.
  """
  eval_cost = eval_errors if eval_cost is None else eval_cost
  below = eval_errors < config.converge_threshold  # NaN compares False
  streak_start = jnp.where(below & (state.below_count == 0), state.step, state.streak_start)
  below_count = jnp.where(below, state.below_count + 1, 0)
  above_count = jnp.where(below, 0, state.above_count + 1)
  was_converged = state.converged_step >= 0
  becomes = ~was_converged & (below_count >= config.converge_patience)
  loses = was_converged & (above_count >= config.converge_patience)
  converged_step = jnp.where(becomes, streak_start,
                             jnp.where(loses, -1, state.converged_step))
  # A diverged seed's evaluations judge the frozen parameters it had before
  # its non-finite step; none of them is its best (its best_step stays at
  # or before the divergence).
  improved = ~state.diverged & jnp.isfinite(eval_errors) & jnp.isfinite(eval_cost) & (
      (eval_errors < state.best_eval)
      | ((eval_errors == state.best_eval) & (eval_cost < state.best_cost)))
  return state.replace(
      streak_start=streak_start, below_count=below_count, above_count=above_count,
      converged_step=converged_step,
      first_converged_step=jnp.where(becomes & (state.first_converged_step < 0),
                                     streak_start, state.first_converged_step),
      best_cost=jnp.where(improved, eval_cost, state.best_cost),
      best_step=jnp.where(improved, state.step, state.best_step),
      collapses=state.collapses + loses.astype(jnp.int32),
      best_eval=jnp.where(improved, eval_errors, state.best_eval),
      best_params=_tree_where(improved, evaluated_params(state), state.best_params),
      best_opt_state=None if state.best_opt_state is None else _tree_where(
          improved, state.opt_state, state.best_opt_state),
      last_eval=eval_errors)


def _restore_best_if_lost(state: TrainState, was_converged, optimizer) -> TrainState:
  """A seed that just lost convergence (a collapse, counted in `collapses`)
  goes back to its best parameters, with the optimizer state it had then
  (`best_opt_state`, with restore_optimizer_state) or a fresh one, and stays
  converged: its lr stays calm and its bookkeeping goes on from there.
  `last_eval` keeps the evaluation that found the collapse."""
  lost = was_converged & (state.converged_step < 0)
  fresh = (optimizer.init(state.best_params) if state.best_opt_state is None
           else state.best_opt_state)
  if hasattr(fresh, "skipped"):  # the count of skipped spikes runs on
    fresh = fresh._replace(skipped=state.opt_state.skipped)
  average = state.average_params
  if average is not None:
    average = _tree_where(lost, state.best_params, average)
  return state.replace(
      params=_tree_where(lost, state.best_params, state.params),
      average_params=average,
      opt_state=_tree_where(lost, fresh, state.opt_state),
      converged_step=jnp.where(lost, state.best_step, state.converged_step),
      above_count=jnp.where(lost, 0, state.above_count))


def train_chunk(state: TrainState, start=None, *, task, model_config, config: TrainConfig,
                optimizer: Optional[optax.GradientTransformation] = None):
  """eval_every steps, then an evaluation on fresh training-length data.

  One seed; returns (state, step_metrics {name: [eval_every]}, eval_metrics).
  start: the chunk's first global step (int32 scalar, = state.step), passed
  unbatched (`make_seed_parallel(..., in_axes=(0, None))`) so the seeds share
  each step's length; None: state.step (see `train_step`).
  """
  def body(state, step):
    return train_step(state, task, model_config, config, optimizer, step)

  steps = None if start is None else start + jnp.arange(config.eval_every, dtype=jnp.int32)
  state, step_metrics = jax.lax.scan(body, state, steps, length=config.eval_every)
  eval_rng, rng = jax.random.split(state.rng)
  # Uniform over the training lengths: the convergence criterion.
  lengths = jnp.arange(config.min_length, config.max_length + 1)
  per_length = max(1, -(-config.eval_batch // lengths.shape[0]))
  per_length_metrics = evaluate.evaluate_padded(
      evaluated_params(state), eval_rng, task, model_config, lengths, per_length,
      config.max_length, config.eval_memory_size)
  means = {name: jnp.mean(value) for name, value in per_length_metrics.items()}
  value = evaluate.convergence_value(task, means)
  was_converged = state.converged_step >= 0
  state = _update_convergence(state.replace(rng=rng), value, config, means["bits"])
  if config.restore_best_on_collapse:
    state = _restore_best_if_lost(state, was_converged, optimizer or make_optimizer(config))
  eval_metrics = {"eval_loss": means["bits"], "eval_bit_errors": means["bit_errors"]}
  if "optimal_bits" in means:
    eval_metrics["eval_optimal_bits"] = means["optimal_bits"]
    eval_metrics["eval_excess_bits"] = value
  return state, step_metrics, eval_metrics


