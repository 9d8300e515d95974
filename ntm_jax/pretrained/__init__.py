"""Small trained models shipped with the package, to inspect without training.

    model_config, params = ntm_jax.pretrained.load("copy")

Each model is `<task>.msgpack` (flax-serialised params) beside `<task>.json`
(the model config, the command that trained it and that seed's results).
`export` writes them from a run directory.
"""
import json
import os
from typing import Optional

from flax import serialization

from ntm_jax import checkpoints
from ntm_jax.experiment import MODEL_KINDS

FOLDER = os.path.dirname(os.path.abspath(__file__))


def available(folder: str = FOLDER) -> list:
  return sorted(f[:-8] for f in os.listdir(folder) if f.endswith(".msgpack"))


def load(task: str, folder: str = FOLDER):
  """(model_config, params) of the pretrained model for `task`."""
  names = available(folder)
  if task not in names:
    raise ValueError(f"no pretrained model for {task!r}; available: {', '.join(names) or 'none'}")
  with open(os.path.join(folder, f"{task}.json")) as f:
    info = json.load(f)
  model_config = MODEL_KINDS[info["model_kind"]](**info["model"])
  with open(os.path.join(folder, f"{task}.msgpack"), "rb") as f:
    params = serialization.msgpack_restore(f.read())
  return model_config, params


def info(task: str, folder: str = FOLDER) -> dict:
  with open(os.path.join(folder, f"{task}.json")) as f:
    return json.load(f)


def export(run_dir: str, task: Optional[str] = None, seed: Optional[int] = None,
           folder: str = FOLDER, command: str = "") -> str:
  """Writes the best parameters of `seed` (default: the best seed) of a run."""
  config = checkpoints.load_config(run_dir)
  summary = checkpoints.load_summary(run_dir)
  seed = checkpoints.best_seed(summary) if seed is None else seed
  params = checkpoints.seed_params(checkpoints.load_states(run_dir), seed)
  task = task or config.task
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, f"{task}.msgpack"), "wb") as f:
    f.write(serialization.msgpack_serialize(params))
  with open(os.path.join(folder, f"{task}.json"), "w") as f:
    json.dump({"task": config.task, "task_options": dict(config.task_options),
               "model_kind": config.model_kind, "model": config.to_json()["model"],
               "train": config.to_json()["train"], "command": command,
               "seed": summary["seeds"][seed] if summary else {"index": seed}},
              f, indent=2)
  return os.path.join(folder, f"{task}.msgpack")
