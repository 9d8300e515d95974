"""Drawing a trained model: from a run directory or from a pretrained file."""
import os
from typing import Optional

import jax
import numpy as np

from ntm_jax import checkpoints, plots
from ntm_jax import model as model_lib
from ntm_jax import train as train_lib
from ntm_jax.config import NTMConfig


def draw_model(model_config, params, task, length: int, memory_size: Optional[int],
               out_dir: str, tag: str = "", rng=None, test_batch: int = 32) -> dict:
  """Head weightings and memory for one test sequence, plus bit errors.

  Returns {"paths": [...], "bit_errors": mean bit errors per sequence over
  `test_batch` fresh sequences of `length`}.
  """
  rng = jax.random.PRNGKey(0) if rng is None else rng
  if not isinstance(model_config, NTMConfig):
    memory_size = None
  _, errors = train_lib.evaluate_lengths(params, rng, task, model_config, [length],
                                         test_batch, memory_size)
  result = {"bit_errors": float(errors[0]), "paths": []}
  if not isinstance(model_config, NTMConfig):
    return result  # an LSTM has no heads or memory to draw
  inputs, targets, mask = task.sample(jax.random.fold_in(rng, 1), 1, length, length)
  logits, trace = model_lib.apply(params, inputs, model_config, memory_size=memory_size,
                                  return_trace=True, trace_memory=True)
  outputs = jax.nn.sigmoid(logits[0]) * mask[0][:, None]
  steps = inputs.shape[1]
  result["paths"].append(plots.head_weightings(
      inputs[0], targets[0], outputs, trace["read_weights"][0], trace["write_weights"][0],
      os.path.join(out_dir, f"heads{tag}.png")))
  result["paths"].append(plots.memory_matrix(
      np.asarray(trace["memory"][0]), [steps // 4, steps // 2, steps - 1],
      os.path.join(out_dir, f"memory{tag}.png")))
  return result


def write_run_plots(run_dir: str, seed: Optional[int] = None, length: Optional[int] = None,
                    memory_size: Optional[int] = None) -> dict:
  """All plots of a finished run into run_dir/plots/.

  Args:
    run_dir: a run directory written by `ntm_jax.experiment.run`.
    seed: index of the seed to draw heads for (default: the best seed).
    length: test length for the head plots (default: the training maximum).
    memory_size: memory rows for the head plots (default: the test memory).

  Returns:
    {"paths": [...], "seed": index, "length": L, "bit_errors": value}.
  """
  config = checkpoints.load_config(run_dir)
  summary = checkpoints.load_summary(run_dir)
  out_dir = os.path.join(run_dir, "plots")
  paths = []
  if summary is not None:
    paths.append(plots.learning_curves(checkpoints.load_metrics(run_dir), summary,
                                       os.path.join(out_dir, "learning_curves.png")))
    paths.append(plots.steps_to_converge(summary, os.path.join(out_dir, "steps_to_converge.png")))
    paths.append(plots.generalisation({config.model_kind.upper(): summary},
                                      os.path.join(out_dir, "generalisation.png")))
  seed = checkpoints.best_seed(summary) if seed is None and summary else (seed or 0)
  if not 0 <= seed < config.train.seeds:
    raise ValueError(f"seed index must be in [0, {config.train.seeds}), got {seed}")
  length = config.train.max_length if length is None else length
  memory_size = memory_size or config.train.test_memory_size
  params = checkpoints.seed_params(checkpoints.load_states(run_dir), seed)
  drawn = draw_model(config.model, params, config.make_task(), length, memory_size,
                     out_dir, tag=f"_seed{seed}_L{length}")
  return {"paths": paths + drawn["paths"], "seed": seed, "length": length,
          "bit_errors": drawn["bit_errors"]}
