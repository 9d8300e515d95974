"""A local sweep runner: the W&B sweep YAMLs, without a W&B server.

    python -m sweeps.run sweeps/copy.yaml --trials 8 [--out_dir DIR] [--set steps=1000 ...]

Reads the same YAML, draws trials (grid or random; bayes falls back to
random), checks every trial's parameters against its experiment's flags
(an unknown name or a value the flag cannot parse: one line naming the
trial and parameter, nothing run), runs each trial as the YAML's command
with the macros resolved the way `wandb agent` resolves them (`${args}` ->
`--name=value`), plus `--out_dir=DIR/trial_NNN --wandb=off
--progress=false`, then reads each trial's summary.json and ranks the
trials by the YAML's metric (computed by `ntm_jax.runs.summary.sweep_metrics`,
as the W&B logger does), printing the table and writing DIR/ranking.md and
DIR/ranking.json. A failed trial's row says why (the last "error: ..." line
of its log, or its exit code or signal), and the sweep then exits 1.
"""
import argparse
import datetime
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys

import yaml

import ntm_jax.runs.rundir as rundir
from ntm_jax.runs.summary import sweep_metrics

METHODS = ("grid", "random", "bayes")
_ENVVAR = re.compile(r"\$\{envvar:([A-Za-z0-9_]*)\}")


def load(path: str) -> dict:
  """A sweep YAML, checked for the keys this runner and W&B both need;
  ValueError (one line, naming the file) for anything else."""
  try:
    with open(path) as f:
      sweep = yaml.safe_load(f)
  except OSError as error:
    raise ValueError(f"{path}: cannot read ({error.strerror or error})") from None
  except UnicodeDecodeError:
    raise ValueError(f"{path}: not a text file") from None
  except yaml.YAMLError as error:  # several lines: what went wrong, then where
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    raise ValueError(f"{path}: not valid YAML ({problem}{where})") from None
  if not isinstance(sweep, dict):
    raise ValueError(f"{path}: not a sweep (a YAML mapping)")
  for key in ("method", "metric", "parameters", "command"):
    if key not in sweep:
      raise ValueError(f"{path}: sweep has no {key!r}")
  if sweep["method"] not in METHODS:
    raise ValueError(f"{path}: unknown method {sweep['method']!r}; one of {METHODS}")
  if not isinstance(sweep["metric"], dict) or not isinstance(sweep["metric"].get("name"), str):
    raise ValueError(f"{path}: metric must be a mapping with a name")
  if sweep["metric"].get("goal", "maximize") not in ("maximize", "minimize"):
    raise ValueError(f"{path}: metric goal must be maximize or minimize")
  parameters = sweep["parameters"]
  if not isinstance(parameters, dict) or not all(isinstance(v, dict)
                                                 for v in parameters.values()):
    raise ValueError(f"{path}: parameters must map each name to a mapping "
                     "(value, values or a distribution)")
  if not isinstance(sweep["command"], list) or not sweep["command"]:
    raise ValueError(f"{path}: command must be a non-empty list")
  return sweep


def _quantize(x: float, spec: dict):
  q = spec.get("q", 1)
  x = round(x / q) * q
  return int(x) if isinstance(q, int) else x


def _draw(name: str, spec: dict, rng: random.Random):
  """One value of a parameter, for W&B's parameter specs."""
  if "value" in spec:
    return spec["value"]
  if "values" in spec:
    weights = spec.get("probabilities")
    return rng.choices(spec["values"], weights=weights)[0] if weights else rng.choice(spec["values"])
  kind = spec.get("distribution")
  if kind is None:  # W&B infers it from min/max: ints -> int_uniform
    kind = ("int_uniform" if isinstance(spec.get("min"), int) and isinstance(spec.get("max"), int)
            else "uniform")
  base = kind[2:] if kind.startswith("q_") else kind
  if base == "int_uniform":
    x = rng.randint(spec["min"], spec["max"])
  elif base == "uniform":
    x = rng.uniform(spec["min"], spec["max"])
  elif base == "log_uniform_values":  # min/max are the values
    x = math.exp(rng.uniform(math.log(spec["min"]), math.log(spec["max"])))
  elif base == "log_uniform":  # min/max are natural logs
    x = math.exp(rng.uniform(spec["min"], spec["max"]))
  elif base == "inv_log_uniform_values":
    x = 1 / math.exp(rng.uniform(math.log(1 / spec["max"]), math.log(1 / spec["min"])))
  elif base == "normal":
    x = rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0))
  elif base == "log_normal":
    x = math.exp(rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0)))
  elif base == "beta":
    x = rng.betavariate(spec.get("a", 1.0), spec.get("b", 1.0))
  else:
    raise ValueError(f"parameter {name!r}: unsupported distribution {kind!r}")
  return _quantize(x, spec) if kind.startswith("q_") else x


def trials(sweep: dict, count: int, seed: int = 0, log=print) -> list:
  """Up to `count` parameter dicts drawn as the sweep's method says."""
  parameters = sweep["parameters"]
  method = sweep["method"]
  if method == "grid":
    names = sorted(parameters)
    choices = []
    for name in names:
      spec = parameters[name]
      if "values" in spec:
        choices.append(spec["values"])
      elif "value" in spec:
        choices.append([spec["value"]])
      else:
        raise ValueError(f"grid search needs value or values for {name!r}")
    grid = [dict(zip(names, combo)) for combo in itertools.product(*choices)]
    if len(grid) > count:
      log(f"sweeps.run: the grid has {len(grid)} points; running the first {count}")
    return grid[:count]
  if method == "bayes":
    log("sweeps.run: the bayes method needs the W&B server; drawing at random instead")
  rng = random.Random(seed)
  return [{name: _draw(name, spec, rng) for name, spec in sorted(parameters.items())}
          for _ in range(count)]


def _args(parameters: dict) -> dict:
  """The argument forms `wandb agent` offers, formatted as it formats them."""
  pairs = [(name, value) for name, value in parameters.items()]
  return {
      "args": [f"--{n}={v}" for n, v in pairs],
      "args_no_hyphens": [f"{n}={v}" for n, v in pairs],
      "args_no_equals": [x for n, v in pairs for x in (f"--{n}", str(v))],
      "args_no_boolean_flags": [f"--{n}" if isinstance(v, bool) else f"--{n}={v}"
                                for n, v in pairs if v is not False],
      "args_json": [json.dumps(parameters)],
  }


def command(sweep: dict, parameters: dict) -> list:
  """The YAML's command with W&B's macros resolved the way an agent does.

  `${env}` (the agent's /usr/bin/env) is dropped and `${interpreter}` is this
  Python, so the command is [sys.executable, "-m", module, "--name=value", ...].
  """
  expansions = {"env": [], "interpreter": [sys.executable],
                "program": [sweep.get("program", "")], **_args(parameters)}
  resolved = []
  for item in sweep["command"]:
    item = _ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), str(item))
    if item.startswith("${") and item.endswith("}"):
      if item[2:-1] not in expansions:
        raise ValueError(f"unsupported command macro {item}")
      resolved.extend(expansions[item[2:-1]])
    else:
      resolved.append(item)
  return resolved


def _experiment(cmd: list):
  """The `experiments.<name>` module a resolved command runs with `-m`, or
  None (a program of its own: its flags are its business)."""
  if "-m" in cmd[:-1] and cmd[cmd.index("-m") + 1].startswith("experiments."):
    return cmd[cmd.index("-m") + 1]
  return None


def check_trials(drawn: list, commands: list) -> None:
  """Every trial's parameters against its experiment's flags, before any
  trial runs: ValueError (one line, naming the trial and the parameter) for
  a name the experiment has no flag for, or a value its flag cannot parse."""
  import copy
  from absl import flags
  from sweeps.experiment_flags import load_experiment
  for i, (parameters, cmd) in enumerate(zip(drawn, commands)):
    module = _experiment(cmd)
    if module is None:
      continue
    try:
      load_experiment(module)
    except Exception as error:  # the experiment's own import: report it, run nothing
      raise ValueError(f"trial {i}: cannot load {module} "
                       f"({type(error).__name__}: {error})") from None
    known = copy.deepcopy(flags.FLAGS)
    known.unparse_flags()
    for name in parameters:
      if name not in known:
        raise ValueError(f"trial {i}: parameter {name!r} is not a flag of {module}")
    try:  # the whole command, the YAML's own fixed flags too
      left = copy.deepcopy(known)([module] + cmd[cmd.index(module) + 1:])
    except flags.Error as error:
      whole = " ".join(str(error).split())
    else:
      if len(left) > 1:
        raise ValueError(f"trial {i}: {module} takes no arguments, got {left[1:]}")
      continue
    for name, value in parameters.items():  # which parameter it was
      try:
        copy.deepcopy(known)([module, f"--{name}={value}"])
      except flags.Error as error:
        raise ValueError(f"trial {i}: parameter {name}={value}: "
                         + " ".join(str(error).split())) from None
    raise ValueError(f"trial {i}: the sweep's command: {whole}")


def failure(returncode: int, log_path: str, summary_path: str):
  """Why a trial failed, in one line, or None if it did not: the last
  "error: ..." line of its log, else its exit code or signal."""
  if returncode == 0:
    return None if os.path.exists(summary_path) else "exit 0 without a summary.json"
  reason = None
  try:
    with open(log_path, errors="replace") as f:
      for line in f:
        if line.startswith("error: "):
          reason = line.strip()
  except OSError:
    pass
  if reason:
    return reason
  if returncode < 0:
    import signal
    try:
      return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
      return f"killed by signal {-returncode}"
  return f"exit code {returncode}"


def _parse_value(text: str):
  """`--set name=value`: a YAML scalar (1e-3, true, 20) or the raw text."""
  try:
    value = yaml.safe_load(text)
  except yaml.YAMLError:
    return text
  return value if isinstance(value, (bool, int, float, str)) else text


def rank(results: list, metric: str, goal: str) -> list:
  """Best first by `metric`, ties to the lower median cost at the longest
  test length (not to trial order); then finished trials without a value
  (e.g. no median), then failed trials; remaining ties keep trial order."""
  def key(r):
    value = r["metrics"].get(metric)
    if value is None:
      return (1 if r["metrics"] else 2, 0.0, 0.0)
    tie = r["metrics"].get("median_bits_at_longest")
    return (0, -value if goal == "maximize" else value,
            float("inf") if tie is None else tie)
  return sorted(results, key=key)


def ranking_table(results: list, metric: str, columns: list) -> str:
  """A Markdown table: rank, trial, the sweep metrics, the parameters, and
  for a failed trial its one-line reason (`failure`)."""
  metric_names = [metric] + [m for m in ("converged_fraction", "median_steps_to_converge",
                                         "diverged_fraction", "under_1_bit_at_longest_fraction",
                                         "median_bits_at_longest") if m != metric]
  def cell(value):
    if value is None:
      return "-"
    if isinstance(value, float):
      return f"{value:.4g}"
    return str(value)
  lines = ["| rank | trial | " + " | ".join(metric_names + columns + ["failure"]) + " |",
           "|" + " --- |" * (3 + len(metric_names) + len(columns))]
  for position, r in enumerate(results, 1):
    reason = (r.get("failure") or "").replace("|", "\\|")
    cells = ([cell(r["metrics"].get(m)) for m in metric_names]
             + [cell(r["parameters"].get(c)) for c in columns] + [reason])
    lines.append(f"| {position} | {r['trial']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
  """A bad argument in one "error: ..." line, without argparse's usage text."""

  def error(self, message):
    sys.exit(f"error: {message}")


def main(argv=None) -> list:
  """The command line; raises ValueError (one line) for bad input, before
  anything runs or is written. Returns the ranked results."""
  parser = _Parser(
      prog="python -m sweeps.run", description=__doc__.splitlines()[0])
  parser.add_argument("sweep", help="a sweep YAML, e.g. sweeps/copy.yaml")
  parser.add_argument("--trials", type=int, default=4, help="trials to run (grid: at most)")
  parser.add_argument("--out_dir", default=None,
                      help="sweep directory (default runs/sweeps/<name>/<timestamp>)")
  parser.add_argument("--seed", type=int, default=0, help="seed of the random draws")
  parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                      help="fix a flag for every trial, over the YAML (repeatable)")
  parser.add_argument("--dry_run", action="store_true", help="print the commands only")
  options = parser.parse_args(argv)
  if options.trials < 1:
    raise ValueError(f"--trials must be >= 1, got {options.trials}")
  sweep = load(options.sweep)
  name = os.path.splitext(os.path.basename(options.sweep))[0]
  out_dir = options.out_dir or os.path.join(
      "runs", "sweeps", name, datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
  overrides = {}
  for item in options.set:
    key, equals, value = item.partition("=")
    if not equals or not key:
      raise ValueError(f"--set wants NAME=VALUE, got {item!r}")
    overrides[key] = _parse_value(value)
  metric, goal = sweep["metric"]["name"], sweep["metric"].get("goal", "maximize")
  # A --set parameter is fixed, so it leaves the grid (no repeated trials).
  sweep = {**sweep, "parameters": {name: {"value": overrides[name]} if name in overrides
                                   else spec for name, spec in sweep["parameters"].items()}}
  drawn = [{**parameters, **overrides}
           for parameters in trials(sweep, options.trials, options.seed)]
  commands = [command(sweep, parameters) for parameters in drawn]  # macro errors now
  check_trials(drawn, commands)  # every trial's flags, before the first one runs
  if not options.dry_run:
    rundir.check_out_dir(out_dir)
    os.makedirs(out_dir, exist_ok=True)

  results = []
  for i, (parameters, cmd) in enumerate(zip(drawn, commands)):
    trial_dir = os.path.join(out_dir, f"trial_{i:03d}")
    log_path = os.path.join(out_dir, f"trial_{i:03d}.log")
    # Later flags win in absl: the local runner never logs to W&B.
    cmd = cmd + [f"--out_dir={trial_dir}", "--wandb=off", "--progress=false"]
    print(f"trial {i}: {' '.join(cmd[1:])}", flush=True)
    if options.dry_run:
      continue
    with open(log_path, "w") as log:
      returncode = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    summary_path = os.path.join(trial_dir, "summary.json")
    metrics = {}
    reason = failure(returncode, log_path, summary_path)
    if reason is None:
      with open(summary_path) as f:
        metrics = sweep_metrics(json.load(f))
      print(f"trial {i}: {metric} = {metrics.get(metric)}", flush=True)
    else:
      print(f"trial {i} failed ({reason}); see {log_path}", flush=True)
    results.append({"trial": i, metric: metrics.get(metric), "metrics": metrics,
                    "parameters": parameters, "dir": trial_dir, "returncode": returncode,
                    "failure": reason})
  if options.dry_run:
    return []

  results = rank(results, metric, goal)
  # Columns: what the sweep varies; fixed values and --set overrides go above.
  varied = sorted(n for n, spec in sweep["parameters"].items()
                  if "value" not in spec and n not in overrides)
  fixed = {**{n: spec["value"] for n, spec in sweep["parameters"].items() if "value" in spec},
           **overrides}
  table = ranking_table(results, metric, varied)
  fixed_line = ", ".join(f"{n}={v}" for n, v in sorted(fixed.items()))
  with open(os.path.join(out_dir, "ranking.md"), "w") as f:
    f.write(f"# {name}: {len(results)} trials ranked by {metric} ({goal})\n\n"
            f"Every trial: {fixed_line or '(nothing fixed)'}\n\n{table}\n")
  with open(os.path.join(out_dir, "ranking.json"), "w") as f:
    json.dump({"sweep": os.path.abspath(options.sweep), "metric": metric, "goal": goal,
               "fixed": fixed, "trials": results}, f, indent=2)
  print(table)
  print(f"ranking written to {os.path.join(out_dir, 'ranking.md')}")
  failed = [r for r in results if r["failure"]]
  if failed:
    print(f"{len(failed)} of {len(results)} trials failed: "
          + ", ".join(str(r["trial"]) for r in sorted(failed, key=lambda r: r["trial"])))
  return results


if __name__ == "__main__":
  try:
    ran = main()
  except ValueError as error:
    sys.exit(f"error: {error}")
  # Non-zero when any trial failed (its reason is in the table).
  sys.exit(1 if any(r["failure"] for r in ran) else 0)
