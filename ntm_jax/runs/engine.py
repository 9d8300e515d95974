"""The engine: config -> trained seeds -> run directory.

`run(config, out_dir)` trains every seed of one configuration in one compiled
program, writes `config.json`, `metrics.jsonl` (per step, per seed),
checkpoints (orbax) and `summary.json`, and prints a summary table. The same
`out_dir` with `resume=True` continues an interrupted run from its latest
checkpoint and ends with the same parameters as an uninterrupted run.
"""
import dataclasses
import functools
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ntm_jax import models
from ntm_jax import training
from ntm_jax.config import ExperimentConfig
import ntm_jax.runs.checkpoints as checkpoints
import ntm_jax.runs.ownership as ownership
import ntm_jax.runs.progress as progress_bar
import ntm_jax.runs.provenance as provenance
import ntm_jax.runs.rundir as rundir
import ntm_jax.runs.summary as summary_lib
from ntm_jax.runs.loggers import SafeLoggers
from ntm_jax.training import distributed

RunInterrupted = ownership.RunInterrupted


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
  rows = models.get_model(config.model).memory_rows(config.model)
  if rows is None:
    return
  longest = training.draws.padded_length(t)
  trained = [("train_memory_sizes", n, longest) for n in t.train_memory_sizes]
  for memory, size, length in (("memory_rows", rows, longest), *trained,
                               ("eval_memory_size", t.eval_memory_size or rows, t.max_length),
                               ("test_memory_size", t.test_memory_size or rows,
                                max(t.test_lengths))):
    if size < config.model.shift_range:
      raise ValueError(f"{memory} {size} is smaller than shift_range "
                       f"{config.model.shift_range}")
    if task.memory_needed(length) > size:
      raise ValueError(f"length {length} needs {task.memory_needed(length)} memory rows "
                       f"but {memory} is {size}")


def run(config: ExperimentConfig, out_dir: str, resume: bool = False,
        devices: Optional[int] = None, progress: bool = True,
        initial_states=None, log=print, loggers=(),
        resume_steps: Optional[int] = None, optimizer=None,
        overwrite: bool = False, finish=None) -> dict:
  """Trains all seeds of `config`, writes the run directory, returns the summary.

  Args:
    config: the experiment.
    out_dir: the run directory; with resume=True its config.json wins.
    resume: continue from the latest usable checkpoint in out_dir (an
      unreadable latest one falls back to the previous); nothing on disk
      changes until the restore has succeeded.
    resume_steps: with resume, train to this many steps instead of the saved
      config's (extends a finished run; config.json is updated to match). A
      cosine learning-rate schedule is stretched to the new total from the
      resumed step on; a constant one makes this the same as one longer run.
    overwrite: replace a run already in out_dir (its files are deleted).
    devices: how many local devices share the seeds (default: all).
    progress: show a live progress bar.
    initial_states: optional stacked TrainStates to start from (tests use it
      to give one seed its own learning rate).
    log: where one-line messages go.
    loggers: `ntm_jax.runs.loggers.RunLogger`s (e.g. W&B); their failures never
      stop training.
    optimizer: None for the config's optimizer, or any optax
      GradientTransformation (its updates are applied as they are; it
      carries its own learning rate; a run trained with one is resumed by
      passing the same one).
    finish: optional `finish(out_dir, summary)`, called after summary.json
      while the run still owns out_dir (the experiments draw the plots).

  Raises:
    ValueError: (one line) bad settings, out_dir in use by a live run (see
      `ownership`) or holding a run without resume/overwrite, no usable
      checkpoint to resume; before anything compiles or changes on disk.
    ownership.RunInterrupted: SIGTERM or SIGINT arrived; the run finished its
      chunk and saved a checkpoint first (handlers are installed only while
      the training loop runs, and the previous ones restored after).
  """
  wall_start = time.perf_counter()
  # Several processes (hosts) share the seeds: every one trains its own and
  # writes its checkpoint shards; only the first writes the run's files and
  # talks to the user and the loggers.
  main = distributed.is_main_process()
  if not main:
    log, progress, loggers = (lambda _: None), False, ()
  if resume:
    config = rundir.saved_config(out_dir)
    if resume_steps is not None and resume_steps != config.train.steps:
      log(f"training to step {resume_steps} (the saved config says {config.train.steps})")
      config = dataclasses.replace(
          config, train=dataclasses.replace(config.train, steps=resume_steps))
    log(f"resuming {out_dir} with its saved config.json (other settings are ignored)")
  validate(config)
  t = config.train
  task = config.make_task()
  mesh = distributed.seed_mesh(devices)
  padded_seeds = training.padded_seed_count(
      t.seeds, mesh.size, training.default_group_target(
          mesh.devices.flat[0].platform, config.model))
  if (initial_states is not None
      and jax.tree_util.tree_leaves(initial_states)[0].shape[0] != padded_seeds):
    raise ValueError(f"initial_states must hold {padded_seeds} seeds")
  with ownership.claim(out_dir, resume, overwrite, main):
    summary = _owned_run(config, out_dir, resume, resume_steps, task, mesh, padded_seeds,
                         initial_states, optimizer, log, loggers, progress, wall_start)
    if finish is not None and main:
      finish(out_dir, summary)
    return summary


def _owned_run(config, out_dir, resume, resume_steps, task, mesh, padded_seeds,
               initial_states, optimizer, log, loggers, progress, wall_start):
  """`run` once out_dir is this run's."""
  main = distributed.is_main_process()
  t = config.train
  seed_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
  states = (initial_states if initial_states is not None
            else training.init_states(config.model, t, padded_seeds, optimizer))
  states = distributed.put_seeds(states, seed_sharding)
  manager = checkpoints.manager(out_dir)
  start_step = 0
  if resume:
    # Nothing is written until this has worked: a failed resume changes nothing.
    try:
      restored_step, restored = checkpoints.restore(manager, states, t.seeds, log)
    except ValueError:
      manager.close()
      raise
    if restored_step is None:
      log(f"{out_dir} has no checkpoint yet: starting from step 0")
    elif t.steps < restored_step:
      manager.close()
      raise ValueError(f"steps {t.steps} is below the step of the checkpoint "
                       f"to resume from ({restored_step})")
    else:
      start_step = restored_step
      states = distributed.put_seeds(restored, seed_sharding)
      log(f"resumed from step {start_step}")
      for unreadable in [s for s in manager.all_steps() if s > start_step]:
        manager.delete(unreadable)  # else orbax would keep it over the new save
  per_device = padded_seeds // mesh.size
  group = training.seeds_per_group(
      per_device, training.default_group_target(jax.default_backend(), config.model))
  run_json = provenance.config_json(config, out_dir, mesh.size, group)
  if main:
    rundir.write_json(rundir.config_path(out_dir), run_json)
  loggers = SafeLoggers(loggers, log)
  loggers.start(run_json, out_dir)  # W&B's config: config.json, provenance too
  log(f"{t.seeds} seeds ({padded_seeds - t.seeds} padding) over {mesh.size} "
      f"{jax.default_backend()} device(s)"
      + (f" on {jax.process_count()} hosts" if jax.process_count() > 1 else "")
      + f": {per_device} per device"
      + (f", {group} at a time" if group < per_device else ""))
  metrics_file = (rundir.MetricsFile(os.path.join(out_dir, "metrics.jsonl"), start_step)
                  if main else rundir.NoMetricsFile())

  def make_chunk(steps):
    return training.make_seed_parallel(functools.partial(
        training.train_chunk, task=task, model_config=config.model,
        config=dataclasses.replace(t, eval_every=steps), optimizer=optimizer), mesh,
        model_config=config.model, in_axes=(0, None))  # the start step: shared
  # Steps per chunk -> its compiled program: eval_every, and a shorter last
  # chunk when steps is not a multiple of it.
  chunks = {}
  bar = progress_bar.Progress(t.steps, start_step, progress)
  compile_s = train_s = 0.0
  step = start_step
  stop = ownership.StopOnSignal(log, out_dir)
  try:
    with stop:
      while step < t.steps:
        began = time.perf_counter()
        # `states` advances only with `step`: an interruption anywhere in here
        # leaves the two consistent for the checkpoint written on the way out.
        n = min(t.eval_every, t.steps - step)
        first_call = n not in chunks
        if first_call:
          chunks[n] = make_chunk(n)
        new_states, step_metrics, eval_metrics = chunks[n](states, np.int32(step))
        step_metrics, eval_metrics, flags = distributed.gather_seeds(
            (step_metrics, eval_metrics,
             (new_states.converged_step, new_states.diverged)))
        elapsed = time.perf_counter() - began
        if first_call:
          compile_s += elapsed  # the first call compiles (and runs one chunk)
        else:
          train_s += elapsed
        converged_step, diverged = (x[:t.seeds] for x in flags)
        rows = []
        for k in range(n):
          row = {"step": step + k + 1}
          row.update({name: summary_lib.as_list(values[:t.seeds, k])
                      for name, values in step_metrics.items() if name != "train_length"})
          row["train_length"] = int(step_metrics["train_length"][0, k])
          rows.append(row)
        rows[-1].update({name: summary_lib.as_list(v[:t.seeds]) for name, v in eval_metrics.items()})
        rows[-1]["converged"] = int(np.sum(converged_step >= 0))
        rows[-1]["diverged"] = int(np.sum(diverged))
        metrics_file.write(rows)
        loggers.log_chunk(step + n, *summary_lib.chunk_report(rows[-1], elapsed, n, diverged))
        states, step = new_states, step + n
        bar.update(n, float(np.nanmedian(eval_metrics["eval_loss"][:t.seeds])),
                   rows[-1]["converged"], rows[-1]["diverged"], t.seeds)
        # At the end of every chunk that reaches or crosses a multiple.
        every = config.checkpoint_every
        if step // every > (step - n) // every or step >= t.steps:
          checkpoints.save(manager, step, states)
        if t.stop_when_converged and np.all((converged_step >= 0) | diverged):
          log(f"every seed converged or diverged by step {step}: stopping")
          break
        if stop.requested():
          break
  except ownership.RunInterrupted as interrupted:  # a second signal: stop at once
    interrupted.step = step
    raise
  finally:
    # Whatever happened, the latest completed state is on disk.
    bar.close()
    metrics_file.close()
    if step > start_step and manager.latest_step() != step:
      checkpoints.save(manager, step, states)
    manager.close()  # waits for the last save
  if stop.signum is not None:
    raise ownership.RunInterrupted(stop.signum, step, out_dir)

  test_began = time.perf_counter()
  test_keys = jax.vmap(jax.random.PRNGKey)(t.seed + 10_000 + jnp.arange(padded_seeds))
  test_keys = distributed.put_seeds(test_keys, seed_sharding)
  results = {}
  variants = getattr(task, "test_variants", dict)()
  for name, test_task in [("main", task)] + list(variants.items()):
    test = training.make_seed_parallel(functools.partial(
        _test_seed, task=test_task, model_config=config.model, lengths=t.test_lengths,
        batch_size=t.test_batch, memory_size=t.test_memory_size), mesh,
        model_config=config.model)
    results[name] = {key: value[:t.seeds] for key, value in
                     distributed.gather_seeds(test(states.best_params, test_keys)).items()}
  test_s = time.perf_counter() - test_began

  # What the summary needs, gathered from every host.
  # Of the optimizer state only the skipped-step counts (with
  # skip_spikes_while_converged) reach the summary.
  counts = (states.opt_state._replace(inner=None)
            if hasattr(states.opt_state, "skipped") else None)
  host_states = distributed.gather_seeds(states.replace(
      opt_state=counts, best_params=None, average_params=None, best_opt_state=None))
  wall_s = time.perf_counter() - wall_start
  timing = {"wall_s": wall_s, "compile_s": compile_s, "train_s": train_s,
            "test_s": test_s, "steps_run": step - start_step,
            "outside_train_fraction": 1.0 - (compile_s + train_s) / wall_s,
            "devices": mesh.size, "backend": jax.default_backend()}
  param_count = models.param_count(jax.tree_util.tree_map(lambda x: x[0], host_states.params))
  summary = summary_lib.summarize(config, host_states, results, timing, param_count,
                                  training.converge_metric(task))
  if main:
    rundir.write_json(os.path.join(out_dir, "summary.json"), summary)
  loggers.finish(summary)
  log(summary_lib.format_summary(summary))
  return summary


def _test_seed(params, rng, task, model_config, lengths, batch_size, memory_size):
  if models.get_model(model_config).memory_rows(model_config) is None:
    memory_size = None
  return training.evaluate_lengths(params, rng, task, model_config, lengths,
                                    batch_size, memory_size)
