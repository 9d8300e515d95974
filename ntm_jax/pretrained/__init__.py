"""Small trained models shipped with the package, to inspect without training.

    model_config, params = ntm_jax.pretrained.load("copy")
    logits, trace = ntm_jax.apply(params, inputs, model_config, return_trace=True)

Each model is `<task>.msgpack` (one seed's best params, serialised with
flax.serialization.msgpack_serialize) beside `<task>.json`: the model kind
and config, the task and its options, the run's train config, the command
that trained it, and that seed's results (its summary.json entry).
`export(run_dir, task)` writes both from a run directory; pyproject.toml ships
them as package data.
"""
import json
import os
from typing import Optional


FOLDER = os.path.dirname(os.path.abspath(__file__))


def available(folder: str = FOLDER) -> list:
  """Names of the pretrained models in `folder`."""
  if not os.path.isdir(folder):
    return []
  return sorted(f[:-len(".msgpack")] for f in os.listdir(folder)
                if f.endswith(".msgpack")
                and os.path.exists(os.path.join(folder, f[:-len(".msgpack")] + ".json")))


def _check(task: str, folder: str) -> None:
  names = available(folder)
  if task not in names:
    raise ValueError(f"no pretrained model {task!r}; available: {', '.join(names) or 'none'}")


def info(task: str, folder: str = FOLDER) -> dict:
  """The `<task>.json` beside the params: configs, command and results."""
  _check(task, folder)
  with open(os.path.join(folder, f"{task}.json")) as f:
    return json.load(f)


def load(task: str, folder: str = FOLDER):
  """(model_config, params) of the pretrained model for `task`.

  Raises ValueError (one line, listing the available models) for an unknown
  task. params is a nested dict of numpy arrays for `ntm_jax.apply`.
  """
  from ntm_jax.config import MODEL_CONFIGS
  data = info(task, folder)
  model_config = MODEL_CONFIGS[data["model_kind"]](**data["model"])
  from flax import serialization  # here, so listing and info stay light
  with open(os.path.join(folder, f"{task}.msgpack"), "rb") as f:
    params = serialization.msgpack_restore(f.read())
  return model_config, params


def export(run_dir: str, task: Optional[str] = None, seed: Optional[int] = None,
           folder: str = FOLDER, command: Optional[str] = None) -> str:
  """Writes one seed of a run as a pretrained model; returns the .msgpack path.

  Args:
    run_dir: a finished run directory (config.json, checkpoints/, and
      summary.json for the default seed and the results).
    task: the model's name, i.e. `<task>.msgpack` (default: the run's task).
    seed: the seed index to export (default: the best seed, see
      `ntm_jax.runs.checkpoints.best_seed`).
    folder: destination (default: this package folder, which ships).
    command: how the run was made, recorded in the JSON (default: the
      run's command.txt if it has one, else a note with run_dir).

  Writes `<task>.msgpack` (that seed's best_params) and `<task>.json`.
  """
  from ntm_jax.runs import checkpoints
  config, states = checkpoints.load_run(run_dir)
  summary = checkpoints.load_summary(run_dir)
  if seed is None:
    if summary is None:
      raise ValueError(f"{run_dir} has no summary.json: pass seed=")
    seed = checkpoints.best_seed(summary)
  if not 0 <= seed < config.train.seeds:
    raise ValueError(f"seed index must be in [0, {config.train.seeds}), got {seed}")
  if command is None:
    path = os.path.join(run_dir, "command.txt")
    if os.path.exists(path):
      with open(path) as f:
        command = f.read().strip()
    else:
      command = f"(not recorded) run directory {os.path.abspath(run_dir)}"
  params = checkpoints.seed_params(states, seed)
  task = task or config.task
  run_config = config.to_json()
  from flax import serialization
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, f"{task}.msgpack"), "wb") as f:
    f.write(serialization.msgpack_serialize(params))
  with open(os.path.join(folder, f"{task}.json"), "w") as f:
    json.dump({"task": run_config["task"], "task_options": run_config["task_options"],
               "model_kind": run_config["model_kind"], "model": run_config["model"],
               "train": run_config["train"], "command": command, "seed_index": seed,
               "seed": summary["seeds"][seed] if summary else {"seed": config.train.seed + seed}},
              f, indent=2)
  return os.path.join(folder, f"{task}.msgpack")
