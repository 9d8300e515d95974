"""Drawing a trained model: from a run directory or from a pretrained file.

    ntm_jax.analysis.inspection.write_run_plots(run_dir)   # what train_seeds calls
    ntm_jax.analysis.inspection.write_run_plots(run_dir, seed=3, length=100, memory_size=256)
"""
import os
from typing import Optional

import jax
import numpy as np

from ntm_jax import models, training
import ntm_jax.analysis.plots as plots
from ntm_jax.runs import checkpoints


def memory_for(task, length: int, memory_size: Optional[int], model_config,
               test_memory_size: Optional[int]) -> Optional[int]:
  """The memory rows to test `length` with: `memory_size` if given (even if
  too small: the user asked to see that), else the run's test memory
  (`test_memory_size`; None: the model's own rows) raised to what the task
  needs at that length; None for a model without an external memory."""
  if models.memory_size_for(model_config) is None:
    return None
  if memory_size is not None:
    return memory_size
  return max(models.memory_size_for(model_config, test_memory_size),
             task.memory_needed(length))


def memory_warning(task, length: int, memory_size: Optional[int]) -> Optional[str]:
  """One line when `memory_size` rows are fewer than a sequence of `length`
  needs (`task.memory_needed`): its bit errors then measure the shortage,
  not the model. None when they suffice or there is no memory."""
  if memory_size is None:
    return None
  needed = task.memory_needed(length)
  if memory_size >= needed:
    return None
  return (f"warning: memory_size {memory_size} is smaller than the {needed} rows a "
          f"sequence of length {length} needs; the bit errors below count that shortage "
          f"(--memory_size {needed} or more to test the model)")


def draw_model(model_config, params, task, length: int, memory_size: Optional[int],
               out_dir: str, tag: str = "", rng=None, test_batch: int = 32,
               title: str = "") -> dict:
  """Bit errors at one length, and for an NTM its head weightings and memory
  on one fresh test sequence.

  Args:
    model_config, params: one model (one seed's params, no seed axis).
    task: the task object (e.g. `config.make_task()`).
    length: the test sequence length.
    memory_size: memory rows N at test time (None: the config's); ignored
      for the LSTM.
    out_dir: where heads<tag>.png and memory<tag>.png go.
    rng: PRNG key for the test sequences (default PRNGKey(0)).
    test_batch: fresh sequences for the bit error figure.
    title: prefix of the figures' titles.

  Returns:
    {"paths": [PNG paths, empty for an LSTM], "bit_errors": mean bit errors
    per sequence over `test_batch` fresh sequences of `length`,
    "memory_size": the N used (None for an LSTM)}.
  """
  if length < 1:
    raise ValueError(f"length must be >= 1, got {length}")
  rng = jax.random.PRNGKey(0) if rng is None else rng
  memory_size = models.memory_size_for(model_config, memory_size)
  errors = training.evaluate_lengths(params, rng, task, model_config, [length],
                                      test_batch, memory_size)["bit_errors"]
  bit_errors = float(errors[0])
  result = {"bit_errors": bit_errors, "paths": [], "memory_size": memory_size}
  if memory_size is None:
    return result  # an LSTM has no heads or memory to draw
  inputs, targets, mask = task.sample(jax.random.fold_in(rng, 1), 1, length, length)
  logits, trace = models.apply(params, inputs, model_config, memory_size=memory_size,
                                  return_trace=True, trace_memory=True)
  inputs, targets, mask = (np.asarray(x[0]) for x in (inputs, targets, mask))
  outputs = np.asarray(jax.nn.sigmoid(logits[0])) * mask[:, None]
  read_w, write_w = np.asarray(trace["read_weights"][0]), np.asarray(trace["write_weights"][0])
  errors_here = float(np.sum((outputs > 0.5) != (targets > 0.5)))
  heading = (f"{title + ', ' if title else ''}length {length}, memory {result['memory_size']}: "
             f"{bit_errors:.2f} bit errors/seq over {test_batch} ({errors_here:.0f} here)")
  result["paths"].append(plots.head_weightings(
      inputs, targets, outputs, read_w, write_w,
      os.path.join(out_dir, f"heads{tag}.png"), title=heading))
  # The memory a quarter and half way through the sequence and at its end
  # (for copy: half the input written, all of it written, all of it read),
  # on the rows the heads used.
  steps = inputs.shape[0]
  shown = sorted({steps // 4, steps // 2, steps - 1})
  result["paths"].append(plots.memory_matrix(
      np.asarray(trace["memory"][0]), shown, os.path.join(out_dir, f"memory{tag}.png"),
      rows=plots.used_rows(np.concatenate([read_w, write_w], axis=1))))
  return result


def write_run_plots(run_dir: str, seed: Optional[int] = None, length: Optional[int] = None,
                    memory_size: Optional[int] = None, out_dir: Optional[str] = None,
                    log=None) -> dict:
  """All plots of a run into run_dir/plots/ (or `out_dir`); returns what it drew.

  Reads config.json, metrics.jsonl, summary.json (when the run finished) and
  the latest checkpoint. Writes learning_curves.png, steps_to_converge.png
  and generalisation.png (these need summary.json), and for an NTM
  heads_seed<k>_L<len>_N<rows>.png and memory_seed<k>_L<len>_N<rows>.png drawn with that
  seed's best_params on one fresh sequence.

  Args:
    run_dir: a run directory written by `ntm_jax.runs.engine.run`.
    seed: index of the seed to draw (0 .. seeds-1; default: the best seed,
      see `checkpoints.best_seed`, or 0 without a summary).
    length: test length (default: the longest training length).
    memory_size: memory rows at test time (default: the config's
      test_memory_size, else memory_rows, raised to what `length` needs).
    out_dir: where the PNGs go (default: run_dir/plots; another folder
      draws a run on storage that cannot be written).
    log: if given, gets `memory_warning`'s line when memory_size is too
      small for `length`, before anything is drawn.

  Returns:
    {"paths": [every PNG written], "seed": index, "length": L,
     "memory_size": N (None for an LSTM), "bit_errors": that seed's mean bit
     errors per sequence at L over 32 fresh sequences}.
  """
  config = checkpoints.load_config(run_dir)
  summary = checkpoints.load_summary(run_dir)
  out_dir = os.path.join(run_dir, "plots") if out_dir is None else out_dir
  t = config.train
  if seed is None:
    seed = checkpoints.best_seed(summary) if summary else 0
  if not 0 <= seed < t.seeds:
    raise ValueError(f"seed index must be in [0, {t.seeds}), got {seed}")
  length = t.max_length if length is None else length
  task = config.make_task()
  memory_size = memory_for(task, length, memory_size, config.model, t.test_memory_size)
  warning = memory_warning(task, length, memory_size)
  if warning and log is not None:
    log(warning)
  _, states = checkpoints.load_run(run_dir)
  paths = []
  if summary is not None:
    paths.append(plots.learning_curves(checkpoints.load_metrics(run_dir), summary,
                                       os.path.join(out_dir, "learning_curves.png")))
    paths.append(plots.steps_to_converge(summary, os.path.join(out_dir, "steps_to_converge.png"),
                                         total_steps=int(np.max(states.step))))
    paths.append(plots.generalisation({config.model_kind.upper(): summary},
                                      os.path.join(out_dir, "generalisation.png")))
    from ntm_jax.analysis import strategy_plots  # here: only runs that recorded statistics
    paths += strategy_plots.draw_run(run_dir, summary, out_dir)
  drawn = draw_model(config.model, checkpoints.seed_params(states, seed), task, length,
                     memory_size, out_dir,
                     tag=f"_seed{seed}_L{length}" + (f"_N{memory_size}" if memory_size else ""),
                     title=f"{config.task} seed index {seed}")
  return {"paths": paths + drawn["paths"], "seed": seed, "length": length,
          "memory_size": drawn["memory_size"], "bit_errors": drawn["bit_errors"]}
