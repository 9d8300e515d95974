"""A task's first batch against its declared contract, before anything compiles.

`check_first_batch(task, train_config)` draws the batch training's first
step draws (its length, batch size and padding, `training/draws.py`) and
checks it against what the task declares (`ntm_jax.tasks.base.Task`):

- `sample` runs at all, with a concrete length, a traced one (training
  draws the length inside the compiled step) and one length per sequence
  (the evaluations);
- it returns (inputs, targets, mask) of shapes [B, T, input_size],
  [B, T, output_size] and [B, T], T = sequence_steps(max_length);
- inputs and targets are floating point, the mask floating point or bool,
  and every value is finite;
- the mask scores nothing past sequence_steps(length), the steps the
  engine runs;
- given the model's config, the task's metrics of logits the model would
  give are one finite number per sequence.

Any breach is one line, a ValueError naming the task. The shapes come from
`jax.eval_shape` of the training-sized batch (traced, never compiled); the
values from a batch of VALUE_BATCH sequences, in one tiny program compiled
without optimisation (1-3.5 s for the shipped tasks on a 2-core machine
under a load of 7, nearly all of it that compile; run eagerly, each of the
sampler's ops would compile on its own, 3-9 s). A config that passed is
not checked again in the same process.
"""
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ntm_jax.config import TrainConfig
from ntm_jax.tasks import base as task_base
import ntm_jax.training.draws as draws

# Sequences of the batch whose values are checked.
VALUE_BATCH = 2


class _Breach(ValueError):
  """A broken contract: raised through jax.eval_shape unchanged."""


def _one_line(error: BaseException) -> str:
  """`Type: message`, the message cut to its first line (jax's run long)."""
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# Compiler options of the two tiny programs here (the first step's key and
# length; the sampler at VALUE_BATCH sequences): XLA's optimisations cost
# more than they save on a program run once.
_QUICK = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _run_once(fn, *args):
  """fn(*args) as one program compiled without optimisation: a sampler's
  dozens of small ops compile once together, not one by one eagerly."""
  return jax.jit(fn).lower(*args).compile(_QUICK)(*args)


@functools.lru_cache(maxsize=16)
def first_draw(config: TrainConfig) -> tuple:
  """(key, length) of seed 0's first training step: the key `init_state`
  and `train_step` make from config.seed, the length `draws` gives step 0
  (no seed is converged yet)."""
  def draw():
    _, train_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    key = jax.random.split(train_rng, 3)[2]
    if config.max_length_while_converged:
      return key, draws.paired_step_lengths(jnp.int32(0), config)[0]
    return key, draws.step_length(jnp.int32(0), config)
  key, length = _run_once(draw)
  return key, int(length)


def check_first_batch(task, train_config: TrainConfig, model_config=None,
                      name: Optional[str] = None) -> None:
  """Raises ValueError (one line) unless the task's first training batch
  keeps the task's contract (see the module docstring).

  Args:
    task: a task object (`ExperimentConfig.make_task()`).
    train_config: the run's TrainConfig: batch size, lengths, padding, seed.
    model_config: optional; the model's config, to check the task's metrics
      on logits of the model's output_size.
    name: how the message names the task (default: its MODULE:CLASS).
  """
  try:  # the engine checks the same config twice (its caller's validate, then run's)
    memo = (task, train_config, model_config)
    if memo in _PASSED:
      return
  except TypeError:  # a task that cannot be hashed is checked every time
    memo = None
  _check(task, train_config, model_config, name)
  if memo is not None:
    _PASSED.add(memo)


# (task, train_config, model_config) that passed: the check is deterministic.
_PASSED = set()


def _check(task, train_config, model_config, name):
  """`check_first_batch`'s work."""
  cls = type(task)
  name = name or f"{cls.__module__}:{cls.__qualname__}"
  t = train_config
  padded = draws.padded_length(t)
  key, length = first_draw(t)

  def fail(what):
    raise _Breach(f"task {name} {what}")

  def steps_of(n):
    try:
      steps = task.sequence_steps(n)
    except Exception as error:  # the task's code: anything it raises is its fault
      fail(f"failed to give sequence_steps({n}): {_one_line(error)}")
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)):
      fail(f"sequence_steps({n}) must be an int, got {steps!r}")
    return int(steps)

  steps, used = steps_of(padded), steps_of(length)
  if not 1 <= used <= steps:
    fail(f"sequence_steps({length}) is {used}, outside [1, sequence_steps({padded}) = {steps}]")

  def sample(batch, lengths, where):
    """The sampler's output at `lengths` (abstract under eval_shape)."""
    try:
      out = task.sample(key, batch, lengths, padded)
    except Exception as error:
      fail(f"failed to sample a batch of length {length}{where}: {_one_line(error)}")
    if not isinstance(out, (tuple, list)) or len(out) != 3:
      fail(f"sample must return (inputs, targets, mask), got {type(out).__name__}"
           + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""))
    return tuple(out)

  def abstract(batch, lengths, where):
    try:
      return jax.eval_shape(lambda n: sample(batch, n, where), lengths)
    except _Breach:
      raise
    except Exception as error:  # e.g. a Python branch on a traced length
      fail(f"failed to sample a batch of length {length}{where}: {_one_line(error)}")

  # The shapes, at training's batch size: the length traced as in the
  # compiled step, then one per sequence as the evaluations pass it.
  b = t.batch_size
  shaped = abstract(b, jnp.int32(length), " with a traced length (training draws "
                    "it inside the compiled step)")
  _check_shapes(fail, shaped, b, steps, task, padded, length)
  _check_shapes(fail, abstract(b, jnp.full((b,), length, jnp.int32),
                               " with one length per sequence (the evaluations pass [B])"),
                b, steps, task, padded, length)

  # The values, on a tiny batch, scored with logits of the model's width.
  small = min(b, VALUE_BATCH)

  def values(n):
    batch = sample(small, n, "")
    if model_config is None:
      return batch, {}
    return batch, _metrics(fail, task, model_config, *batch)

  try:
    (inputs, targets, mask), metrics = jax.tree_util.tree_map(
        np.asarray, _run_once(values, jnp.int32(length)))
  except _Breach:
    raise
  except Exception as error:
    fail(f"failed to sample a batch of length {length}: {_one_line(error)}")
  for what, x in (("inputs", inputs), ("targets", targets), ("mask", mask)):
    if not np.all(np.isfinite(x.astype(np.float64))):
      fail(f"gave non-finite {what} (NaN or inf) in a batch of length {length}")
  if np.any(mask[:, used:] != 0):
    fail(f"scores steps past sequence_steps({length}) = {used} in a batch of length "
         f"{length} (its mask is non-zero there), but training runs only those {used} steps")
  for key in [k for k in ("bits", "bit_errors", "optimal_bits") if k in metrics]:
    value = metrics[key]
    if value.shape != (small,):
      fail(f"gave {key} of shape {list(value.shape)}, not one number per sequence "
           f"[{small}]")
    if not np.all(np.isfinite(value)):
      fail(f"gave non-finite {key} for a batch of length {length} and zero logits")


def _check_shapes(fail, shaped, batch, steps, task, padded, length):
  """(inputs, targets, mask) of eval_shape against the declared sizes."""
  where = f"sample(batch {batch}, length {length}, max_length {padded})"
  wanted = ((batch, steps, task.input_size), (batch, steps, task.output_size), (batch, steps))
  declared = (f"[{batch}, sequence_steps({padded}) = {steps}, input_size {task.input_size}]",
              f"[{batch}, sequence_steps({padded}) = {steps}, output_size {task.output_size}]",
              f"[{batch}, sequence_steps({padded}) = {steps}]")
  for what, x, want, text in zip(("inputs", "targets", "mask"), shaped, wanted, declared):
    shape = tuple(getattr(x, "shape", ()))
    if shape != want:
      fail(f"{where} gave {what} of shape {list(shape)}, not {text}")
    dtype = np.dtype(x.dtype)
    floating = np.issubdtype(dtype, np.floating)
    if not (floating or (what == "mask" and dtype == np.bool_)):
      fail(f"{where} gave {what} of dtype {dtype}, not floating point"
           + (" or bool" if what == "mask" else ""))


def _metrics(fail, task, model_config, inputs, targets, mask) -> dict:
  """The task's metrics of zero logits of the model's width (traced)."""
  logits = jnp.zeros(targets.shape[:2] + (model_config.output_size,), jnp.float32)
  try:
    metrics = task_base.sequence_metrics(task, logits, targets, mask)
    metrics = {key: metrics[key] for key in ("bits", "bit_errors")}
    if hasattr(task, "optimal_bits"):
      metrics["optimal_bits"] = task.optimal_bits(inputs, targets, mask)
  except Exception as error:  # the task's code (a missing key: KeyError)
    fail(f"failed to score a batch of zero logits (sequence_metrics): {_one_line(error)}")
  return metrics
