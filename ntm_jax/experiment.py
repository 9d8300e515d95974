"""The shared experiment engine: config -> trained seeds -> run directory.

`run(config, out_dir)` trains every seed of one configuration in one compiled
program, writes `config.json`, `metrics.jsonl` (per step, per seed),
checkpoints (orbax) and `summary.json`, and prints a summary table. The same
`out_dir` with `resume=True` continues an interrupted run from its latest
checkpoint and ends with the same parameters as an uninterrupted run.
"""
import dataclasses
import datetime
import functools
import json
import math
import os
import time
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from ntm_jax import distributed
from ntm_jax import model as model_lib
from ntm_jax import tasks as tasks_lib
from ntm_jax import train as train_lib
from ntm_jax.config import LSTMConfig, NTMConfig
from ntm_jax.loggers import SafeLoggers

MODEL_KINDS = {"ntm": NTMConfig, "lstm": LSTMConfig}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything that defines a run; saved as config.json beside its results."""
  task: str
  model: Union[NTMConfig, LSTMConfig]
  train: train_lib.TrainConfig
  task_options: tuple = ()          # (name, value) pairs for the task
  checkpoint_every: int = 1000      # steps; a multiple of train.eval_every

  @property
  def model_kind(self) -> str:
    return "ntm" if isinstance(self.model, NTMConfig) else "lstm"

  def make_task(self):
    return tasks_lib.make_task(self.task, **dict(self.task_options))

  def to_json(self) -> dict:
    return {"task": self.task, "task_options": dict(self.task_options),
            "model_kind": self.model_kind, "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "checkpoint_every": self.checkpoint_every}

  @classmethod
  def from_json(cls, data: dict) -> "ExperimentConfig":
    return cls(task=data["task"], task_options=tuple(sorted(data["task_options"].items())),
               model=MODEL_KINDS[data["model_kind"]](**data["model"]),
               train=train_lib.TrainConfig(**data["train"]),
               checkpoint_every=data["checkpoint_every"])


def validate(config: ExperimentConfig) -> None:
  """Raises ValueError (one line) for settings that cannot work; no compile."""
  task = config.make_task()  # unknown task or option -> error here
  if (config.model.input_size, config.model.output_size) != (task.input_size, task.output_size):
    raise ValueError(
        f"model sizes {config.model.input_size}->{config.model.output_size} do not "
        f"match task {config.task!r} ({task.input_size}->{task.output_size})")
  t = config.train
  smallest = getattr(task, "min_length", 1)
  if t.min_length < smallest or min(t.test_lengths) < smallest:
    raise ValueError(f"task {config.task!r} needs lengths >= {smallest}, got "
                     f"min_length {t.min_length} and test_lengths {t.test_lengths}")
  if config.checkpoint_every % t.eval_every:
    raise ValueError(f"checkpoint_every ({config.checkpoint_every}) must be a "
                     f"multiple of eval_every ({t.eval_every})")
  if isinstance(config.model, NTMConfig):
    rows = config.model.memory_rows
    if task.memory_needed(t.max_length) > rows:
      raise ValueError(f"training length {t.max_length} needs "
                       f"{task.memory_needed(t.max_length)} memory rows but "
                       f"memory_rows is {rows}")
    test_rows = t.test_memory_size or rows
    if test_rows < config.model.shift_range:
      raise ValueError(f"test memory of {test_rows} rows is smaller than shift_range "
                       f"{config.model.shift_range}")
    if task.memory_needed(max(t.test_lengths)) > test_rows:
      raise ValueError(f"test length {max(t.test_lengths)} needs "
                       f"{task.memory_needed(max(t.test_lengths))} memory rows but "
                       f"the test memory has {test_rows}")


def default_out_dir(task: str) -> str:
  return os.path.join("runs", task, datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


# A 1-D mesh named "seeds" over all devices of all processes (one process: local).
seed_mesh = distributed.seed_mesh


def _finite_or_none(x: float):
  x = float(x)
  return round(x, 5) if math.isfinite(x) else None


def _as_list(array) -> list:
  return [_finite_or_none(v) for v in np.asarray(array).ravel()]


class _MetricsFile:
  """metrics.jsonl: one line per training step, lists over seeds."""

  def __init__(self, path: str, keep_through_step: int):
    self.path = path
    kept = []
    if os.path.exists(path):
      with open(path) as f:
        for line in f:
          try:
            row = json.loads(line)
          except json.JSONDecodeError:
            break  # a line cut by a crash: drop it and everything after
          if row["step"] > keep_through_step:
            break
          kept.append(line if line.endswith("\n") else line + "\n")
    with open(path, "w") as f:
      f.writelines(kept)
    self.file = open(path, "a")

  def write(self, rows) -> None:
    self.file.writelines(json.dumps(row) + "\n" for row in rows)
    self.file.flush()

  def close(self) -> None:
    self.file.close()


def _has_checkpoints(out_dir: str) -> bool:
  path = os.path.join(out_dir, "checkpoints")
  return os.path.isdir(path) and bool(os.listdir(path))


def _checkpoint_manager(out_dir: str):
  import orbax.checkpoint as ocp  # heavy import, only when running
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(out_dir, "checkpoints")),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def _save(manager, step: int, states) -> None:
  import orbax.checkpoint as ocp
  manager.save(step, args=ocp.args.StandardSave(states))


def _restore(manager, states):
  import orbax.checkpoint as ocp
  step = manager.latest_step()
  if step is None:
    return None, states
  abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, states)
  return step, manager.restore(step, args=ocp.args.StandardRestore(abstract))


def _quartiles(values):
  if not values:
    return None, None, None
  q1, median, q3 = np.percentile(values, [25, 50, 75])
  return float(q1), float(median), float(q3)


def _by_length(values, lengths) -> dict:
  return {str(n): _finite_or_none(values[j]) for j, n in enumerate(lengths)}


def _median_by_length(values, lengths, rows=None) -> dict:
  """Median over seeds (optionally only `rows`) of [S, L] values, per length."""
  values = np.asarray(values, float)
  if rows is not None:
    values = values[rows]
  out = {}
  for j, n in enumerate(lengths):
    column = values[:, j] if values.size else np.array([])
    finite = column[np.isfinite(column)]
    out[str(n)] = _finite_or_none(np.median(finite)) if finite.size else None
  return out


def _test_aggregate(results: dict, lengths, converged_rows) -> dict:
  errors = np.asarray(results["bit_errors"])
  aggregate = {
      "median_bit_errors_by_length": _median_by_length(errors, lengths),
      "median_converged_bit_errors_by_length": _median_by_length(errors, lengths,
                                                                 converged_rows),
      "seeds_under_1_bit_error_by_length": {
          str(n): int(np.sum(errors[:, j] < 1.0)) for j, n in enumerate(lengths)},
      "median_bits_by_length": _median_by_length(results["bits"], lengths),
  }
  if "optimal_bits" in results:
    aggregate["median_optimal_bits_by_length"] = _median_by_length(
        results["optimal_bits"], lengths)
  return aggregate


def summarize(config: ExperimentConfig, states, results: dict, timing: dict,
              param_count: int) -> dict:
  """summary.json's content from the final (unpadded) states on the host.

  Args:
    results: {"main": test results, variant name: ...}, each a dict of
      [seeds, test lengths] arrays ("bits", "bit_errors", maybe
      "optimal_bits") on the best parameters of each seed.
  """
  t = config.train
  task = config.make_task()
  lengths = t.test_lengths
  variants = [name for name in results if name != "main"]
  seeds = []
  for i in range(t.seeds):
    converged = int(states.converged_step[i])
    diverged_step = int(states.diverged_step[i])
    seed = {
        "seed": t.seed + i,
        "converged_step": converged if converged >= 0 else None,
        "diverged": bool(states.diverged[i]),
        "diverged_step": diverged_step if diverged_step >= 0 else None,
        "collapses": int(states.collapses[i]),
        "final_eval": _finite_or_none(states.last_eval[i]),
        "best_eval": _finite_or_none(states.best_eval[i]),
        "bit_errors_by_length": _by_length(results["main"]["bit_errors"][i], lengths),
        "bits_by_length": _by_length(results["main"]["bits"][i], lengths),
    }
    if "optimal_bits" in results["main"]:
      seed["optimal_bits_by_length"] = _by_length(results["main"]["optimal_bits"][i], lengths)
    if variants:
      seed["variants"] = {name: {
          "bit_errors_by_length": _by_length(results[name]["bit_errors"][i], lengths),
          "bits_by_length": _by_length(results[name]["bits"][i], lengths)}
          for name in variants}
    seeds.append(seed)
  converged_rows = [i for i, s in enumerate(seeds) if s["converged_step"] is not None]
  steps = [seeds[i]["converged_step"] for i in converged_rows]
  q1, median, q3 = _quartiles(steps)
  aggregate = {
      "seeds": t.seeds,
      "converged": len(steps),
      "diverged": sum(s["diverged"] for s in seeds),
      "collapsed": sum(s["collapses"] > 0 for s in seeds),
      "steps_to_converge": {"q1": q1, "median": median, "q3": q3},
      "converge_metric": train_lib.converge_metric(task),
      "converge_threshold": t.converge_threshold,
      **_test_aggregate(results["main"], lengths, converged_rows),
      "test_memory_size": t.test_memory_size,
      "param_count": param_count,
  }
  if variants:
    aggregate["variants"] = {name: _test_aggregate(results[name], lengths, converged_rows)
                             for name in variants}
  return {"task": config.task, "model": config.model_kind, "seeds": seeds,
          "aggregate": aggregate, "timing": timing}


def sweep_metrics(summary: dict) -> dict:
  """The numbers a sweep ranks runs by, from a summary (W&B and local alike)."""
  agg = summary["aggregate"]
  return {"converged_fraction": agg["converged"] / agg["seeds"],
          "median_steps_to_converge": agg["steps_to_converge"]["median"],
          "diverged_fraction": agg["diverged"] / agg["seeds"]}


def format_summary(summary: dict) -> str:
  """The printed end-of-run table: the text form of summary.json."""
  agg = summary["aggregate"]
  lengths = list(agg["median_bit_errors_by_length"])
  def cell(v):
    return "nan" if v is None else f"{v:.2f}"
  def row(label, values):
    return f"{label:<30}" + " ".join(f"{cell(values[n]) if not isinstance(values[n], int) else values[n]:>6}"
                                     for n in lengths)
  header = f"{'seed':>5} {'converged':>9} {'div':>4} {'coll':>4} " + " ".join(f"L{n:>5}" for n in lengths)
  lines = [f"{summary['task']} / {summary['model']}: bit errors per sequence by test length "
           f"(memory {agg['test_memory_size']})", header]
  for s in summary["seeds"]:
    conv = "-" if s["converged_step"] is None else str(s["converged_step"])
    lines.append(f"{s['seed']:>5} {conv:>9} {'yes' if s['diverged'] else '':>4} "
                 f"{s['collapses'] or '':>4} " +
                 " ".join(f"{cell(s['bit_errors_by_length'][n]):>6}" for n in lengths))
  lines.append(row("median", agg["median_bit_errors_by_length"]))
  lines.append(row("median of converged seeds", agg["median_converged_bit_errors_by_length"]))
  lines.append(row("seeds < 1 bit error", agg["seeds_under_1_bit_error_by_length"]))
  lines.append(row("median cost (bits)", agg["median_bits_by_length"]))
  if "median_optimal_bits_by_length" in agg:
    lines.append(row("optimal predictor's cost (bits)", agg["median_optimal_bits_by_length"]))
  for name, variant in agg.get("variants", {}).items():
    lines.append(row(f"{name}: median", variant["median_bit_errors_by_length"]))
    lines.append(row(f"{name}: median of converged", variant["median_converged_bit_errors_by_length"]))
    lines.append(row(f"{name}: seeds < 1 bit error", variant["seeds_under_1_bit_error_by_length"]))
  stc = agg["steps_to_converge"]
  lines.append(
      f"converged ({agg['converge_metric']} < {agg['converge_threshold']:g}) "
      f"{agg['converged']}/{agg['seeds']}, diverged {agg['diverged']}, "
      f"collapsed {agg['collapsed']}; steps to converge median "
      f"{cell(stc['median'])} (q1 {cell(stc['q1'])}, q3 {cell(stc['q3'])}); "
      f"params {agg['param_count']}")
  timing = summary["timing"]
  lines.append(
      f"wall {timing['wall_s']:.0f}s: compile {timing['compile_s']:.0f}s, training "
      f"{timing['train_s']:.0f}s, test {timing['test_s']:.0f}s, outside the training "
      f"step {100 * timing['outside_train_fraction']:.1f}%")
  return "\n".join(lines)


class _NoFile:
  """metrics.jsonl on every host but the first: nothing to write."""

  def write(self, rows) -> None:
    pass

  def close(self) -> None:
    pass


class _Progress:
  """A live bar: step, steps/s, median loss, converged / diverged seeds."""

  def __init__(self, total: int, initial: int, enabled: bool):
    self.bar = None
    if enabled:
      from tqdm import tqdm
      self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

  def update(self, steps: int, median_loss: float, converged: int, diverged: int, seeds: int):
    if self.bar is not None:
      self.bar.set_postfix_str(f"loss {median_loss:.2f} bits, converged {converged}/{seeds}, "
                               f"diverged {diverged}")
      self.bar.update(steps)

  def close(self):
    if self.bar is not None:
      self.bar.close()


def saved_config(out_dir: str) -> ExperimentConfig:
  """The ExperimentConfig a run directory was started with (its config.json)."""
  config_path = os.path.join(out_dir, "config.json")
  if not os.path.exists(config_path):
    raise ValueError(f"{out_dir} holds no run to resume (no config.json)")
  with open(config_path) as f:
    return ExperimentConfig.from_json(json.load(f))


def run(config: ExperimentConfig, out_dir: str, resume: bool = False,
        devices: Optional[int] = None, progress: bool = True,
        initial_states=None, log=print, loggers=(), plots: bool = True,
        resume_steps: Optional[int] = None) -> dict:
  """Trains all seeds of `config`, writes the run directory, returns the summary.

  Args:
    config: the experiment.
    out_dir: the run directory; with resume=True its config.json wins.
    resume: continue from the latest checkpoint in out_dir.
    resume_steps: with resume, train to this many steps instead of the saved
      config's (extends a finished run; config.json is updated to match). A
      cosine learning-rate schedule is stretched to the new total from the
      resumed step on; a constant one makes this the same as one longer run.
    devices: how many local devices share the seeds (default: all).
    progress: show a live progress bar.
    initial_states: optional stacked TrainStates to start from (tests use it
      to give one seed its own learning rate).
    log: where one-line messages go.
    loggers: `ntm_jax.loggers.RunLogger`s (e.g. W&B); their failures never
      stop training.
    plots: draw the run's PNGs into out_dir/plots/ at the end (listed in the
      summary under "plots").
  """
  wall_start = time.perf_counter()
  # Several processes (hosts) share the seeds: every one trains its own and
  # writes its checkpoint shards; only the first writes the run's files and
  # talks to the user and the loggers.
  main = distributed.is_main_process()
  if not main:
    log, progress, loggers, plots = (lambda _: None), False, (), False
  config_path = os.path.join(out_dir, "config.json")
  if resume:
    config = saved_config(out_dir)
    if resume_steps is not None and resume_steps != config.train.steps:
      saved_step = _checkpoint_manager(out_dir).latest_step()
      if saved_step is not None and resume_steps < saved_step:
        raise ValueError(f"steps {resume_steps} is below the step of the checkpoint "
                         f"to resume from ({saved_step})")
      log(f"training to step {resume_steps} (the saved config says {config.train.steps})")
      config = dataclasses.replace(
          config, train=dataclasses.replace(config.train, steps=resume_steps))
    log(f"resuming {out_dir} with its saved config.json (other settings are ignored)")
  elif _has_checkpoints(out_dir):
    raise ValueError(f"{out_dir} already holds a run: pass resume=True (--resume) or "
                     "choose another out_dir")
  validate(config)
  t = config.train
  task = config.make_task()
  mesh = seed_mesh(devices)
  padded_seeds = -(-t.seeds // mesh.size) * mesh.size
  if (initial_states is not None
      and jax.tree_util.tree_leaves(initial_states)[0].shape[0] != padded_seeds):
    raise ValueError(f"initial_states must hold {padded_seeds} seeds")
  os.makedirs(out_dir, exist_ok=True)
  if main:
    _write_json(config_path, config.to_json())
  loggers = SafeLoggers(loggers, log)
  loggers.start(config.to_json(), out_dir)
  hosts = f" on {jax.process_count()} hosts" if jax.process_count() > 1 else ""
  per_device = padded_seeds // mesh.size
  group = train_lib.seeds_per_group(
      per_device, train_lib.default_group_target(jax.default_backend(), config.model))
  log(f"{t.seeds} seeds ({padded_seeds - t.seeds} padding) over {mesh.size} "
      f"{jax.default_backend()} device(s){hosts}: {per_device} per device"
      + (f", {group} at a time" if group < per_device else ""))
  seed_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))

  states = (initial_states if initial_states is not None
            else train_lib.init_states(config.model, t, padded_seeds))
  states = distributed.put_seeds(states, seed_sharding)
  manager = _checkpoint_manager(out_dir)
  start_step = 0
  if resume:
    restored_step, states = _restore(manager, states)
    if restored_step is not None:
      start_step = restored_step
      states = distributed.put_seeds(states, seed_sharding)
      log(f"resumed from step {start_step}")
  metrics_file = (_MetricsFile(os.path.join(out_dir, "metrics.jsonl"), start_step)
                  if main else _NoFile())

  chunk = train_lib.make_seed_parallel(functools.partial(
      train_lib.train_chunk, task=task, model_config=config.model, config=t), mesh,
      model_config=config.model)
  bar = _Progress(t.steps, start_step, progress)
  compile_s = train_s = 0.0
  step = start_step
  try:
    while step < t.steps:
      began = time.perf_counter()
      # `states` advances only with `step`: an interruption anywhere in here
      # leaves the two consistent for the checkpoint written on the way out.
      new_states, step_metrics, eval_metrics = chunk(states)
      step_metrics, eval_metrics, flags = distributed.gather_seeds(
          (step_metrics, eval_metrics,
           (new_states.converged_step, new_states.diverged)))
      elapsed = time.perf_counter() - began
      if step == start_step:
        compile_s = elapsed  # the first call compiles (and runs one chunk)
      else:
        train_s += elapsed
      converged_step, diverged = (x[:t.seeds] for x in flags)
      rows = []
      for k in range(t.eval_every):
        row = {"step": step + k + 1}
        row.update({name: _as_list(values[:t.seeds, k]) for name, values in step_metrics.items()
                    if name != "train_length"})
        row["train_length"] = int(step_metrics["train_length"][0, k])
        rows.append(row)
      rows[-1].update({name: _as_list(v[:t.seeds]) for name, v in eval_metrics.items()})
      rows[-1]["converged"] = int(np.sum(converged_step >= 0))
      rows[-1]["diverged"] = int(np.sum(diverged))
      metrics_file.write(rows)
      loggers.log_chunk(step + t.eval_every, *_chunk_report(rows[-1], elapsed, t.eval_every))
      states, step = new_states, step + t.eval_every
      bar.update(t.eval_every, float(np.nanmedian(eval_metrics["eval_loss"][:t.seeds])),
                 rows[-1]["converged"], rows[-1]["diverged"], t.seeds)
      if step % config.checkpoint_every == 0 or step >= t.steps:
        _save(manager, step, states)
      if t.stop_when_converged and np.all((converged_step >= 0) | diverged):
        log(f"every seed converged or diverged by step {step}: stopping")
        break
  finally:
    # Whatever happened, the latest completed state is on disk.
    bar.close()
    metrics_file.close()
    if step > start_step and manager.latest_step() != step:
      _save(manager, step, states)
    manager.wait_until_finished()

  test_began = time.perf_counter()
  test_keys = jax.vmap(jax.random.PRNGKey)(t.seed + 10_000 + jnp.arange(padded_seeds))
  test_keys = distributed.put_seeds(test_keys, seed_sharding)
  results = {}
  variants = getattr(task, "test_variants", dict)()
  for name, test_task in [("main", task)] + list(variants.items()):
    test = train_lib.make_seed_parallel(functools.partial(
        _test_seed, task=test_task, model_config=config.model, lengths=t.test_lengths,
        batch_size=t.test_batch, memory_size=t.test_memory_size), mesh,
        model_config=config.model)
    results[name] = {key: value[:t.seeds] for key, value in
                     distributed.gather_seeds(test(states.best_params, test_keys)).items()}
  test_s = time.perf_counter() - test_began

  # What the summary needs, gathered from every host.
  host_states = distributed.gather_seeds(states.replace(opt_state=None, best_params=None))
  wall_s = time.perf_counter() - wall_start
  timing = {"wall_s": wall_s, "compile_s": compile_s, "train_s": train_s,
            "test_s": test_s, "steps_run": step - start_step,
            "outside_train_fraction": 1.0 - (compile_s + train_s) / wall_s,
            "devices": mesh.size, "backend": jax.default_backend()}
  param_count = model_lib.param_count(jax.tree_util.tree_map(lambda x: x[0], host_states.params))
  summary = summarize(config, host_states, results, timing, param_count)
  if main:
    _write_json(os.path.join(out_dir, "summary.json"), summary)
  if plots:
    try:
      from ntm_jax import inspection  # matplotlib: only when drawing
      drawn = inspection.write_run_plots(out_dir)
      summary["plots"] = [os.path.relpath(p, out_dir) for p in drawn["paths"]]
      _write_json(os.path.join(out_dir, "summary.json"), summary)
    except Exception as error:  # pictures must never cost the results
      log(f"warning: drawing the plots failed ({error!r}); results are saved")
  loggers.finish(summary)
  log(format_summary(summary))
  return summary


def _write_json(path: str, data) -> None:
  """Write-then-rename, so a crash never leaves a half-written file."""
  with open(path + ".tmp", "w") as f:
    json.dump(data, f, indent=2)
  os.replace(path + ".tmp", path)


def _chunk_report(row: dict, seconds: float, steps: int):
  """(aggregate, per_seed) for loggers from a chunk's last metrics row."""
  names = ("loss", "bit_errors", "grad_norm", "eval_loss", "eval_bit_errors",
           "eval_optimal_bits", "eval_excess_bits")
  per_seed = {name: row[name] for name in names if name in row}
  aggregate = {"converged": row["converged"], "diverged": row["diverged"],
               "train_length": row["train_length"], "steps_per_s": steps / seconds}
  for name in ("loss", "eval_loss", "eval_bit_errors", "eval_excess_bits"):
    if name not in row:
      continue
    values = np.array([np.nan if v is None else v for v in row[name]], float)
    if np.isfinite(values).any():
      aggregate[f"{name}/median"] = float(np.nanmedian(values))
      aggregate[f"{name}/min"] = float(np.nanmin(values))
      aggregate[f"{name}/max"] = float(np.nanmax(values))
  return aggregate, per_seed


def _test_seed(params, rng, task, model_config, lengths, batch_size, memory_size):
  if not isinstance(model_config, NTMConfig):
    memory_size = None
  return train_lib.evaluate_lengths(params, rng, task, model_config, lengths,
                                    batch_size, memory_size)
