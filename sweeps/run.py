"""A local sweep runner: the W&B sweep YAMLs, without a W&B server.

    python -m sweeps.run sweeps/copy.yaml --trials 8 [--out_dir DIR] [--set steps=1000 ...]

Reads the same YAML, draws trials (grid or random; bayes falls back to
random), runs each as the YAML's command with absl-style `--name=value`
flags, reads each trial's summary.json and ranks the trials by the YAML's
metric, printing the table and writing it to DIR/ranking.md and ranking.json.
"""
import argparse
import datetime
import itertools
import json
import math
import os
import random
import subprocess
import sys

import yaml

from ntm_jax.experiment import sweep_metrics


def load(path: str) -> dict:
  with open(path) as f:
    sweep = yaml.safe_load(f)
  for key in ("method", "metric", "parameters", "command"):
    if key not in sweep:
      raise ValueError(f"{path}: sweep has no {key!r}")
  return sweep


def _draw(spec: dict, rng: random.Random):
  if "value" in spec:
    return spec["value"]
  if "values" in spec:
    return rng.choice(spec["values"])
  kind = spec.get("distribution", "uniform")
  low, high = spec["min"], spec["max"]
  if kind == "int_uniform":
    return rng.randint(low, high)
  if kind == "uniform":
    return rng.uniform(low, high)
  if kind == "log_uniform_values":
    return math.exp(rng.uniform(math.log(low), math.log(high)))
  if kind == "log_uniform":  # W&B: min/max are natural logs
    return math.exp(rng.uniform(low, high))
  raise ValueError(f"unsupported distribution {kind!r}")


def trials(sweep: dict, count: int, seed: int = 0) -> list:
  """`count` parameter dicts drawn as the sweep's method says."""
  parameters = sweep["parameters"]
  method = sweep["method"]
  if method == "grid":
    names = sorted(parameters)
    choices = [parameters[n]["values"] if "values" in parameters[n] else [parameters[n]["value"]]
               for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*choices)][:count]
  if method == "bayes":
    print("sweeps.run: the bayes method needs the W&B server; drawing at random instead")
  elif method != "random":
    raise ValueError(f"unknown sweep method {method!r}")
  rng = random.Random(seed)
  return [{name: _draw(spec, rng) for name, spec in sorted(parameters.items())}
          for _ in range(count)]


def _flag(name: str, value) -> str:
  if isinstance(value, bool):
    value = str(value).lower()
  return f"--{name}={value}"


def command(sweep: dict, parameters: dict) -> list:
  """The YAML's command with W&B's macros resolved the way an agent does."""
  args = [_flag(name, value) for name, value in parameters.items()]
  resolved = []
  for item in sweep["command"]:
    if item == "${env}":
      continue  # /usr/bin/env only finds the interpreter; we have it already
    if item == "${interpreter}":
      resolved.append(sys.executable)
    elif item == "${program}":
      resolved.append(sweep["program"])
    elif item == "${args}":
      resolved.extend(args)
    else:
      resolved.append(item)
  return resolved


def _parse_value(text: str):
  try:
    return yaml.safe_load(text)
  except yaml.YAMLError:
    return text


def main(argv=None) -> list:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("sweep", help="a sweep YAML, e.g. sweeps/copy.yaml")
  parser.add_argument("--trials", type=int, default=4)
  parser.add_argument("--out_dir", default=None)
  parser.add_argument("--seed", type=int, default=0, help="seed of the trial draws")
  parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                      help="fix a flag for every trial (repeatable)")
  options = parser.parse_args(argv)
  sweep = load(options.sweep)
  name = os.path.splitext(os.path.basename(options.sweep))[0]
  out_dir = options.out_dir or os.path.join(
      "runs", "sweeps", name, datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
  os.makedirs(out_dir, exist_ok=True)
  overrides = {}
  for item in options.set:
    key, _, value = item.partition("=")
    overrides[key] = _parse_value(value)
  metric, goal = sweep["metric"]["name"], sweep["metric"].get("goal", "maximize")

  results = []
  for i, parameters in enumerate(trials(sweep, options.trials, options.seed)):
    parameters = {**parameters, **overrides}
    trial_dir = os.path.join(out_dir, f"trial_{i:03d}")
    # Later flags win in absl: the local runner never logs to W&B.
    cmd = command(sweep, parameters) + [f"--out_dir={trial_dir}", "--wandb=off",
                                        "--progress=false"]
    print(f"trial {i}: {' '.join(cmd[1:])}", flush=True)
    finished = subprocess.run(cmd, capture_output=True, text=True)
    with open(os.path.join(out_dir, f"trial_{i:03d}.log"), "w") as f:
      f.write(finished.stdout + finished.stderr)
    value = None
    summary_path = os.path.join(trial_dir, "summary.json")
    if finished.returncode == 0 and os.path.exists(summary_path):
      with open(summary_path) as f:
        value = sweep_metrics(json.load(f)).get(metric)
    else:
      print(f"trial {i} failed (exit {finished.returncode}); see {out_dir}/trial_{i:03d}.log")
    results.append({"trial": i, metric: value, "parameters": parameters, "dir": trial_dir})

  worst = -math.inf if goal == "maximize" else math.inf
  results.sort(key=lambda r: worst if r[metric] is None else r[metric],
               reverse=(goal == "maximize"))
  names = sorted({k for r in results for k in r["parameters"]})
  lines = [f"| rank | trial | {metric} | " + " | ".join(names) + " |",
           "| --- " * (3 + len(names)) + "|"]
  for rank, r in enumerate(results, 1):
    cells = [str(r["parameters"].get(n, "")) for n in names]
    lines.append(f"| {rank} | {r['trial']} | {r[metric]} | " + " | ".join(cells) + " |")
  table = "\n".join(lines)
  with open(os.path.join(out_dir, "ranking.md"), "w") as f:
    f.write(f"# {name}: trials ranked by {metric} ({goal})\n\n{table}\n")
  with open(os.path.join(out_dir, "ranking.json"), "w") as f:
    json.dump({"metric": metric, "goal": goal, "trials": results}, f, indent=2)
  print(table)
  print(f"ranking written to {out_dir}/ranking.md")
  return results


if __name__ == "__main__":
  main()
