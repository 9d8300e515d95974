"""Numbers that describe how an NTM's heads move, from a trace: the pieces a
task's `strategy_statistics` hook builds its per-seed statistics from.

Every statistic is a pure function of ONE sequence's unbatched arrays: head
weightings `weights: [T, H, N]` (T time steps, H heads, N memory rows; the
weighting each step used, `ntm_jax.apply(..., return_trace=True)`'s
"read_weights" / "write_weights" of one sequence). A statistic of several
heads is their mean. Movements are circular (the shift wraps around the
memory): a move from row N-1 to row 0 is +1.

`probe` runs a model on a few fixed sequences and returns those arrays.
This module imports nothing of ntm_jax but the public `ntm_jax.apply`, so
a task's module can use it (tasks sit below models and analysis).
"""
import functools
from typing import Optional

import jax
import numpy as np

import ntm_jax


def circular_offset(a, b, rows: int) -> np.ndarray:
  """a - b on a ring of `rows` rows, in [-rows // 2, rows - rows // 2):
  a head one row behind another is -1, not rows - 1. a, b: int arrays of
  one shape."""
  return (np.asarray(a) - np.asarray(b) + rows // 2) % rows - rows // 2


def argmax_rows(weights) -> np.ndarray:
  """[T, H, N] weightings -> [T, H] the row of peak weight of each head and step."""
  return np.argmax(np.asarray(weights), axis=-1)


def moves(weights) -> np.ndarray:
  """[T, H, N] -> [T-1, H]: how many rows each head's peak moved from one
  step to the next (signed, circular; +1 is one row forward)."""
  rows = argmax_rows(weights)
  return circular_offset(rows[1:], rows[:-1], np.shape(weights)[-1])


def drift(weights) -> float:
  """Mean |move| of the peak row per step over [T, H, N] weightings: 0 for
  a parked head, 1 for one that steps one row at a time, more for jumps.
  NaN for T < 2 (no move to measure)."""
  steps = moves(weights)
  return float(np.mean(np.abs(steps))) if steps.size else float("nan")


def shift_fraction(weights, shift: int = 1) -> float:
  """Fraction of steps over [T, H, N] whose peak row moved by exactly
  `shift` rows (+1: the one-row-per-step movement of location addressing).
  NaN for T < 2."""
  steps = moves(weights)
  return float(np.mean(steps == shift)) if steps.size else float("nan")


def peak(weights) -> float:
  """Mean over steps and heads of the largest weight of [T, H, N]
  weightings: 1 for one-hot (sharp) heads, 1/N for uniform ones. NaN for T = 0."""
  w = np.asarray(weights)
  return float(np.mean(np.max(w, axis=-1))) if w.shape[0] else float("nan")


def entropy_bits(weights) -> float:
  """Mean over steps and heads of the entropy (bits) of [T, H, N]
  weightings: 0 for one-hot heads, log2(N) for uniform ones. NaN for T = 0."""
  w = np.asarray(weights, np.float64)
  if not w.shape[0]:
    return float("nan")
  # 0 log 0 = 0: the rows a head does not touch add nothing.
  terms = np.where(w > 0, -w * np.log2(np.where(w > 0, w, 1.0)), 0.0)
  return float(np.mean(np.sum(terms, axis=-1)))


def rows_touched(weights, threshold: float = 0.1) -> float:
  """Fraction of the N rows that some head of [T, H, N] weightings gave
  more than `threshold` at some step: how much of the memory it used."""
  w = np.asarray(weights)
  return float(np.mean(np.any(w > threshold, axis=(0, 1))))


def peak_agreement(a, b) -> float:
  """Fraction of the K pairs of steps whose first heads (a: [K, Ha, N],
  b: [K, Hb, N]) peak on the same row; for copy, each output step's read
  against the write of the vector it replays. NaN for K = 0."""
  same = argmax_rows(a)[:, 0] == argmax_rows(b)[:, 0]
  return float(np.mean(same)) if same.size else float("nan")


def window_mean(values, start: int, stop: int) -> float:
  """Mean of values[start:stop] over steps and heads (values: [T, H], e.g.
  a traced gate); NaN for an empty window."""
  part = np.asarray(values)[start:stop]
  return float(np.mean(part)) if part.size else float("nan")


@functools.lru_cache(maxsize=None)
def _traced_apply(model_config, memory_size: int):
  # One compile per (config, memory size, input shape), shared by all seeds.
  return jax.jit(lambda params, inputs: ntm_jax.apply(
      params, inputs, model_config, memory_size=memory_size, return_trace=True))


def probe(params, model_config, task, length: int, memory_size: int, sequences: int = 8,
          rng=None, pad_to: Optional[int] = None) -> dict:
  """One model on `sequences` fresh sequences of `length`.

  Args:
    params, model_config: one model (one seed's params, no seed axis).
    task: the task whose `sample` draws the sequences.
    length, memory_size: the sequences' length and the memory rows N.
    sequences: B, how many.
    rng: PRNG key (default PRNGKey(0)); the sequences of a length come from
      `fold_in(rng, length)`, so every seed sees the same ones.
    pad_to: None, or a max_length >= length to pad the sequences to, so that
      probes of several lengths share one compiled program (a model is
      causal: a sequence's own steps do not see the padding after them).

  Returns:
    numpy arrays, batch first: "inputs" [B, T, I], "targets" [B, T, O],
    "mask" [B, T], "logits" [B, T, O]; for a model with heads also
    "read_weights" [B, T, R, N], "write_weights" [B, T, W, N], and per head
    kind ("read_" / "write_") "gate", "key_strength", "sharpening" [B, T, H]
    and "shift_weights" [B, T, H, 2k+1]. Without heads (the LSTM) only the
    first four. T = task.sequence_steps(length): the padding is cut off.
  """
  rng = jax.random.PRNGKey(0) if rng is None else rng
  inputs, targets, mask = task.sample(jax.random.fold_in(rng, length), sequences, length,
                                      length if pad_to is None else pad_to)
  logits, trace = _traced_apply(model_config, memory_size)(params, inputs)
  out = {"inputs": inputs, "targets": targets, "mask": mask, "logits": logits}
  if trace:
    out["read_weights"], out["write_weights"] = trace["read_weights"], trace["write_weights"]
    for kind in ("read", "write"):
      head = trace[f"{kind}_addressing"]
      for field in ("gate", "key_strength", "sharpening", "shift_weights"):
        out[f"{kind}_{field}"] = getattr(head, field)
  steps = task.sequence_steps(length)
  return {name: np.asarray(value)[:, :steps] for name, value in out.items()}
