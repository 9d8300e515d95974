"""Seed-vmapped training: many runs of one configuration in one program.

Everything here works on ONE seed's `TrainState`; `make_train_chunk` vmaps it
over a leading seed axis, scans it over `eval_every` steps, evaluates on fresh
data and updates the per-seed convergence bookkeeping, all in one compiled
call. Python runs once per chunk, never per step.
"""
import dataclasses
import math
from typing import Any, Optional, Sequence, Union

import flax
import jax
import jax.numpy as jnp
import optax

from ntm_jax import model as model_lib
from ntm_jax.config import LSTMConfig

OPTIMIZERS = ("adam", "rmsprop")
LR_SCHEDULES = ("constant", "cosine")
_LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How to train; every field is shared by all seeds of a run."""
  seeds: int = 30
  seed: int = 0                  # seed i uses jax.random.PRNGKey(seed + i)
  steps: int = 10_000
  batch_size: int = 4            # sequences per seed per step
  optimizer: str = "adam"        # "adam" or "rmsprop" (the paper's, centred)
  learning_rate: float = 1e-3
  # "cosine": decay from learning_rate to lr_final_fraction * learning_rate
  # over the run; calmer late updates mean fewer converged seeds collapse.
  lr_schedule: str = "constant"
  lr_final_fraction: float = 0.1
  rmsprop_momentum: float = 0.9
  rmsprop_decay: float = 0.95
  clip_norm: float = 10.0        # clip_by_global_norm
  min_length: int = 1
  max_length: int = 20
  # Curriculum: the longest training length grows linearly from
  # curriculum_start to max_length over curriculum_steps (0: off).
  curriculum_steps: int = 0
  curriculum_start: int = 1
  eval_every: int = 250          # steps per compiled chunk; eval after each
  eval_batch: int = 32           # fresh sequences per seed per evaluation
  # On the task's convergence value: bit errors per sequence for most tasks,
  # relative excess over the optimal cost for ngrams.
  converge_threshold: float = 0.1
  converge_patience: int = 2     # evaluations in a row below the threshold
  stop_when_converged: bool = False
  test_lengths: Sequence[int] = (10, 20, 40, 60, 80, 100, 120)
  test_batch: int = 32
  test_memory_size: Optional[int] = 128

  def __post_init__(self):
    object.__setattr__(self, "test_lengths", tuple(int(x) for x in self.test_lengths))
    checks = [
        (self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}"),
        (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
        (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
        (self.optimizer in OPTIMIZERS,
         f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}"),
        (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
        (self.lr_schedule in LR_SCHEDULES,
         f"unknown lr_schedule {self.lr_schedule!r}; choose one of {LR_SCHEDULES}"),
        (0 < self.lr_final_fraction <= 1, "lr_final_fraction must be in (0, 1]"),
        (self.clip_norm > 0, f"clip_norm must be > 0, got {self.clip_norm}"),
        (1 <= self.min_length <= self.max_length,
         f"need 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}"),
        (self.curriculum_steps >= 0, "curriculum_steps must be >= 0"),
        (self.curriculum_steps == 0
         or self.min_length <= self.curriculum_start <= self.max_length,
         f"curriculum_start must lie in [min_length, max_length], got {self.curriculum_start}"),
        (self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}"),
        (self.steps % self.eval_every == 0,
         f"steps ({self.steps}) must be a multiple of eval_every ({self.eval_every})"),
        (self.eval_batch >= 1 and self.test_batch >= 1, "eval_batch and test_batch must be >= 1"),
        (self.converge_threshold > 0, "converge_threshold must be > 0"),
        (self.converge_patience >= 1, "converge_patience must be >= 1"),
        (len(self.test_lengths) > 0 and min(self.test_lengths) >= 1,
         f"test_lengths must be positive, got {self.test_lengths}"),
        (self.test_memory_size is None or self.test_memory_size >= 1,
         "test_memory_size must be >= 1"),
    ]
    for ok, message in checks:
      if not ok:
        raise ValueError(message)


@flax.struct.dataclass
class TrainState:
  """One seed's training state. Under the engine every leaf gains a leading
  seed axis [S, ...]."""
  params: Any
  opt_state: Any
  best_params: Any          # params at the best evaluation so far
  rng: jax.Array            # PRNG key
  step: jax.Array           # [] int32, steps taken
  learning_rate: jax.Array  # [] float32: per seed, so a grid is one more axis
  diverged: jax.Array       # [] bool: a non-finite loss/gradient/update was seen
  diverged_step: jax.Array  # [] int32, -1 if never
  converged_step: jax.Array  # [] int32, -1 unless converged now
  streak_start: jax.Array   # [] int32, step of the current below-threshold streak
  below_count: jax.Array    # [] int32, evaluations in a row below threshold
  above_count: jax.Array    # [] int32, evaluations in a row above threshold
  collapses: jax.Array      # [] int32, times a converged seed lost it
  best_eval: jax.Array      # [] float32, lowest eval convergence value seen
  last_eval: jax.Array      # [] float32, latest eval convergence value


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
  """The update direction; the engine scales it by the seed's -learning_rate."""
  clip = optax.clip_by_global_norm(config.clip_norm)
  if config.optimizer == "adam":
    return optax.chain(clip, optax.scale_by_adam())
  # Graves 2013 RMSProp as the paper uses it: centred, eps inside the sqrt.
  return optax.chain(
      clip, optax.scale_by_stddev(decay=config.rmsprop_decay, eps=1e-4),
      optax.trace(decay=config.rmsprop_momentum))


def init_state(rng: jax.Array, model_config, config: TrainConfig,
               learning_rate=None) -> TrainState:
  """A fresh TrainState for one seed."""
  init_rng, train_rng = jax.random.split(rng)
  params = model_lib.init(init_rng, model_config)
  lr = config.learning_rate if learning_rate is None else learning_rate
  int0 = jnp.zeros((), jnp.int32)
  return TrainState(
      params=params, opt_state=make_optimizer(config).init(params),
      best_params=params, rng=train_rng, step=int0,
      learning_rate=jnp.asarray(lr, jnp.float32),
      diverged=jnp.zeros((), bool), diverged_step=int0 - 1,
      converged_step=int0 - 1, streak_start=int0 - 1, below_count=int0,
      above_count=int0, collapses=int0,
      best_eval=jnp.asarray(jnp.inf, jnp.float32),
      last_eval=jnp.asarray(jnp.nan, jnp.float32))


def init_states(model_config, config: TrainConfig, num_seeds: Optional[int] = None):
  """TrainStates for seeds config.seed .. config.seed + num_seeds - 1, stacked."""
  num_seeds = config.seeds if num_seeds is None else num_seeds
  keys = jax.vmap(jax.random.PRNGKey)(config.seed + jnp.arange(num_seeds))
  return jax.jit(jax.vmap(lambda k: init_state(k, model_config, config)))(keys)


def sequence_metrics(logits, targets, mask):
  """Per-sequence cost and errors of sigmoid outputs.

  Args:
    logits: [B, T, O]; targets: [B, T, O] in {0, 1}; mask: [B, T].

  Returns:
    (bits [B]: cross-entropy in bits per sequence, bit_errors [B]: outputs on
    the wrong side of 0.5 per sequence), both counted only where mask is 1.
  """
  nats = optax.sigmoid_binary_cross_entropy(logits, targets)
  bits = jnp.sum(nats * mask[..., None], axis=(1, 2)) / _LN2
  wrong = (logits > 0.0) != (targets > 0.5)
  bit_errors = jnp.sum(wrong * mask[..., None], axis=(1, 2))
  return bits, bit_errors


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


def _tree_all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
  return jnp.all(jnp.stack(leaves))


def _tree_where(condition, on_true, on_false):
  return jax.tree_util.tree_map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)


def train_step(state: TrainState, task, model_config, config: TrainConfig):
  """One optimisation step of one seed: (state, metrics) -> (state, metrics).

  A seed whose loss, gradients or updated parameters are non-finite is marked
  diverged and frozen: its update is skipped from then on, so it can never
  poison the other seeds sharing the program.
  """
  rng, length_rng, data_rng = jax.random.split(state.rng, 3)
  longest = curriculum_length(state.step, config)
  lengths = jax.random.randint(length_rng, (config.batch_size,),
                               config.min_length, longest + 1)
  inputs, targets, mask = task.sample(data_rng, config.batch_size, lengths,
                                      config.max_length)

  def loss_fn(params):
    logits, _ = model_lib.apply(params, inputs, model_config)
    bits, bit_errors = sequence_metrics(logits, targets, mask)
    return jnp.mean(bits), jnp.mean(bit_errors)

  (loss, bit_errors), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  direction, opt_state = make_optimizer(config).update(grads, state.opt_state, state.params)
  learning_rate = state.learning_rate * learning_rate_scale(state.step, config)
  params = jax.tree_util.tree_map(lambda p, d: p - learning_rate * d,
                                  state.params, direction)
  healthy = (~state.diverged & jnp.isfinite(loss) & _tree_all_finite(grads)
             & _tree_all_finite(params))
  newly_diverged = ~state.diverged & ~healthy
  state = state.replace(
      params=_tree_where(healthy, params, state.params),
      opt_state=_tree_where(healthy, opt_state, state.opt_state),
      rng=rng, step=state.step + 1,
      diverged=state.diverged | newly_diverged,
      diverged_step=jnp.where(newly_diverged, state.step, state.diverged_step))
  metrics = {"loss": loss, "bit_errors": bit_errors,
             "grad_norm": optax.tree.norm(grads), "train_length": longest}
  return state, metrics


def evaluate_padded(params, rng, task, model_config, lengths, batch_size,
                     max_length: int, memory_size: Optional[int]) -> dict:
  """Mean cost per sequence for each entry of `lengths` [L].

  All sequences are padded to the static `max_length`, so one compiled
  program serves any lengths up to it.

  Returns:
    {"bits": [L] cross-entropy in bits, "bit_errors": [L]}, plus
    "optimal_bits" [L] for tasks with a known optimal predictor (ngrams),
    computed on the very same sequences.
  """
  lengths = jnp.asarray(lengths, jnp.int32)
  per_sequence = jnp.repeat(lengths, batch_size)
  inputs, targets, mask = task.sample(rng, per_sequence.shape[0], per_sequence, max_length)
  logits, _ = model_lib.apply(params, inputs, model_config, memory_size=memory_size)
  bits, bit_errors = sequence_metrics(logits, targets, mask)
  results = {"bits": bits, "bit_errors": bit_errors}
  if hasattr(task, "optimal_bits"):
    results["optimal_bits"] = task.optimal_bits(inputs, targets, mask)
  shape = (lengths.shape[0], batch_size)
  return {name: value.reshape(shape).mean(1) for name, value in results.items()}


def evaluate_lengths(params, rng, task, model_config, lengths: Sequence[int],
                     batch_size: int, memory_size: Optional[int] = None) -> dict:
  """Mean cost per sequence at each of `lengths`, one seed.

  Args:
    params: one seed's params.
    rng: PRNG key for the fresh test sequences.
    lengths: static list of test lengths, padded to their maximum.
    batch_size: sequences per length.
    memory_size: N at test time (the controller never sees N).

  Returns:
    evaluate_padded's dict of [L] arrays.
  """
  return evaluate_padded(params, rng, task, model_config, jnp.asarray(lengths),
                          batch_size, max(lengths), memory_size)


def converge_metric(task) -> str:
  """What a task's convergence is judged on: "bit_errors" per sequence, or
  "excess_bits", the relative cost above the optimal predictor's."""
  return getattr(task, "converge_metric", "bit_errors")


def convergence_value(task, metrics: dict):
  """The number compared with converge_threshold, from evaluate_* metrics."""
  if converge_metric(task) == "excess_bits":
    return metrics["bits"] / metrics["optimal_bits"] - 1.0
  return metrics["bit_errors"]


def _update_convergence(state: TrainState, eval_errors, config: TrainConfig) -> TrainState:
  """Per-seed bookkeeping after an evaluation at state.step; `eval_errors`
  is the task's convergence value (see `convergence_value`)."""
  below = eval_errors < config.converge_threshold  # NaN compares False
  streak_start = jnp.where(below & (state.below_count == 0), state.step, state.streak_start)
  below_count = jnp.where(below, state.below_count + 1, 0)
  above_count = jnp.where(below, 0, state.above_count + 1)
  was_converged = state.converged_step >= 0
  becomes = ~was_converged & (below_count >= config.converge_patience)
  loses = was_converged & (above_count >= config.converge_patience)
  converged_step = jnp.where(becomes, streak_start,
                             jnp.where(loses, -1, state.converged_step))
  # `<=`: among equally good evaluations keep the latest, most trained params.
  improved = jnp.isfinite(eval_errors) & (eval_errors <= state.best_eval)
  return state.replace(
      streak_start=streak_start, below_count=below_count, above_count=above_count,
      converged_step=converged_step,
      collapses=state.collapses + loses.astype(jnp.int32),
      best_eval=jnp.where(improved, eval_errors, state.best_eval),
      best_params=_tree_where(improved, state.params, state.best_params),
      last_eval=eval_errors)


def train_chunk(state: TrainState, task, model_config, config: TrainConfig):
  """eval_every steps, then an evaluation on fresh training-length data.

  One seed; returns (state, step_metrics {name: [eval_every]}, eval_metrics).
  """
  def body(state, _):
    return train_step(state, task, model_config, config)

  state, step_metrics = jax.lax.scan(body, state, None, length=config.eval_every)
  eval_rng, rng = jax.random.split(state.rng)
  # Uniform over the training lengths: the convergence criterion.
  lengths = jnp.arange(config.min_length, config.max_length + 1)
  per_length = max(1, -(-config.eval_batch // lengths.shape[0]))
  per_length_metrics = evaluate_padded(state.params, eval_rng, task, model_config,
                                       lengths, per_length, config.max_length, None)
  means = {name: jnp.mean(value) for name, value in per_length_metrics.items()}
  value = convergence_value(task, means)
  state = _update_convergence(state.replace(rng=rng), value, config)
  eval_metrics = {"eval_loss": means["bits"], "eval_bit_errors": means["bit_errors"]}
  if "optimal_bits" in means:
    eval_metrics["eval_optimal_bits"] = means["optimal_bits"]
    eval_metrics["eval_excess_bits"] = value
  return state, step_metrics, eval_metrics


# On a CPU the seeds on one device run a few at a time, vmapped within a
# group and one group after another (`jax.lax.map`): a group's memories,
# activations and optimizer state then stay in the core's cache. Measured on
# the copy task, 30 seeds over 2 CPU devices: 15 seeds at once per device
# 17.8 steps/s, groups of 5 20.5, groups of 3 20.1. GPUs and TPUs want
# every seed at once.
CPU_SEEDS_PER_GROUP = 4
# The LSTM baseline's recurrent kernels (about 1 MB per 256-unit layer) fill
# a core's L2 cache on their own, and its time loop reads them at every step:
# one seed at a time trained 8 seeds of the 3 x 256 baseline on associative
# recall 1.57x faster than groups of 4 (7.1 against 4.5 steps/s) and 1.5x
# faster than groups of 2. WORKSPACE.md has the command.
CPU_LSTM_SEEDS_PER_GROUP = 1


def seeds_per_group(local_seeds: int, target: Optional[int]) -> int:
  """How many of a device's `local_seeds` run at once: the divisor of
  local_seeds nearest `target` (ties: the larger), never below 3 unless
  local_seeds or target is, so for a target of 3 or more a prime count keeps
  all its seeds together rather than running one at a time. `target` None:
  all of them."""
  if target is None or local_seeds <= target:
    return local_seeds
  candidates = [d for d in range(min(3, local_seeds, target), local_seeds + 1)
                if local_seeds % d == 0]
  return min(candidates, key=lambda d: (abs(d - target), -d))


def _grouped_vmap(fn, target: Optional[int]):
  """vmap `fn` over the leading seed axis, `seeds_per_group` seeds at a time."""
  batched = jax.vmap(fn)

  def run(*args):
    seeds = jax.tree_util.tree_leaves(args)[0].shape[0]
    group = seeds_per_group(seeds, target)
    if group == seeds:
      return batched(*args)
    split = jax.tree_util.tree_map(
        lambda x: x.reshape((seeds // group, group) + x.shape[1:]), args)
    out = jax.lax.map(lambda group_args: batched(*group_args), split)
    return jax.tree_util.tree_map(lambda x: x.reshape((seeds,) + x.shape[2:]), out)
  return run


def default_group_target(platform: str, model_config=None) -> Optional[int]:
  """Seeds per group on `platform` ("cpu", "gpu", "tpu") for `model_config`'s
  model (default: an NTM): None is all at once."""
  if platform != "cpu":
    return None
  if isinstance(model_config, LSTMConfig):
    return CPU_LSTM_SEEDS_PER_GROUP
  return CPU_SEEDS_PER_GROUP


def make_seed_parallel(fn, mesh=None, group_target: Union[int, None, str] = "auto",
                       model_config=None):
  """vmap `fn` over a leading seed axis of every argument and output, jit it,
  and, given a 1-D mesh with axis "seeds", split the seeds across its devices
  (no communication: seeds are independent).

  group_target: seeds vmapped at once on each device (see `seeds_per_group`);
  None for all at once; "auto" for `default_group_target` of the devices'
  platform and `model_config`. Grouping changes speed, not results.
  """
  if group_target == "auto":
    group_target = default_group_target(
        mesh.devices.flat[0].platform if mesh is not None else jax.default_backend(),
        model_config)
  batched = _grouped_vmap(fn, group_target)
  if mesh is not None and mesh.size > 1:
    spec = jax.sharding.PartitionSpec("seeds")
    batched = jax.shard_map(batched, mesh=mesh, in_specs=spec, out_specs=spec,
                            check_vma=False)
  return jax.jit(batched)
