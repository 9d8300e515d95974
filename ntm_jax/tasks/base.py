"""The Task protocol, and the default loss and metric a task inherits.

A task is any object with these members (a frozen dataclass in practice):

    input_size: int, output_size: int     widths of one time step's input / target
    min_length: int                       the smallest valid `length`
    memory_needed(length) -> int          memory rows a sequence of `length` uses
    sequence_steps(max_length) -> int     T, time steps of a sequence of max_length
    sample(rng, batch_size, length, max_length) -> (inputs, targets, mask)
        inputs [B, T, input_size], targets [B, T, output_size], mask [B, T]
        (float, 1 where the output is scored), T = sequence_steps(max_length).
        `length` is [] or [B] int and may be traced; a sequence of length l
        must occupy its first sequence_steps(l) steps (the rest is padding
        the engine may skip).

and optionally:

    sequence_metrics(logits, targets, mask) -> {"bits": [B], "bit_errors": [B]}
        the task's loss per sequence ("bits", minimised, in bits for the
        default) and its error count per sequence ("bit_errors"; the
        convergence criterion). Default: `sigmoid_sequence_metrics`. A task
        with categorical or real-valued outputs defines its own.
    test_variants() -> {name: task}   extra generalisation tests
    optimal_bits(inputs, targets, mask) -> [B] and
    converge_metric = "excess_bits"   judge convergence on the cost above the
                                      optimal predictor's (ngrams)

Register a task by name in `ntm_jax/tasks/__init__.py`'s TASKS, or pass its
import path "module:Class" wherever a task name goes (`experiments.train
--task`, `ExperimentConfig.task`).
"""
import math
from typing import Protocol

import jax
import jax.numpy as jnp

_LN2 = math.log(2.0)


class Task(Protocol):
  input_size: int
  output_size: int
  min_length: int

  def memory_needed(self, length: int) -> int: ...

  def sequence_steps(self, max_length: int) -> int: ...

  def sample(self, rng: jax.Array, batch_size: int, length, max_length: int): ...


def sigmoid_cross_entropy(logits, targets):
  """Elementwise -t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)), in nats.

  log(1 - sigmoid(x)) is taken as log_sigmoid(-x): finite for any |x|, where
  log(1 - sigmoid(x)) is -inf once sigmoid(x) rounds to 1. The same
  operations in the same order as optax.sigmoid_binary_cross_entropy, so the
  same bits; tests/test_train.py checks both.
  """
  targets = targets.astype(logits.dtype)
  return -targets * jax.nn.log_sigmoid(logits) - (1.0 - targets) * jax.nn.log_sigmoid(-logits)


def sigmoid_sequence_metrics(logits, targets, mask) -> dict:
  """Per-sequence cost and errors of independent sigmoid outputs.

  Args:
    logits: [B, T, O]; targets: [B, T, O] in {0, 1}; mask: [B, T].

  Returns:
    {"bits": [B] cross-entropy in bits per sequence, "bit_errors": [B]
    outputs on the wrong side of 0.5 per sequence}, both counted only where
    mask is 1.
  """
  nats = sigmoid_cross_entropy(logits, targets)
  bits = jnp.sum(nats * mask[..., None], axis=(1, 2)) / _LN2
  wrong = (logits > 0.0) != (targets > 0.5)
  bit_errors = jnp.sum(wrong * mask[..., None], axis=(1, 2))
  return {"bits": bits, "bit_errors": bit_errors}


def sequence_metrics(task, logits, targets, mask) -> dict:
  """The task's own `sequence_metrics`, or the sigmoid default."""
  own = getattr(task, "sequence_metrics", None)
  return (own or sigmoid_sequence_metrics)(logits, targets, mask)


def converge_metric(task) -> str:
  """What a task's convergence is judged on: "bit_errors" per sequence, or
  "excess_bits", the relative cost above the optimal predictor's."""
  return getattr(task, "converge_metric", "bit_errors")
