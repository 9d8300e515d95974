"""Evaluation of one seed on fresh sequences: at the training lengths (the
convergence check) and at the test lengths (generalisation)."""
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from ntm_jax import models
from ntm_jax.tasks import base as task_base


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
  logits, _ = models.apply(params, inputs, model_config, memory_size=memory_size,
                           rng=jax.random.fold_in(rng, 1))
  results = task_base.sequence_metrics(task, logits, targets, mask)
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


converge_metric = task_base.converge_metric


def convergence_value(task, metrics: dict):
  """The number compared with converge_threshold, from evaluate_* metrics."""
  if converge_metric(task) == "excess_bits":
    return metrics["bits"] / metrics["optimal_bits"] - 1.0
  return metrics["bit_errors"]


