"""The engine: config -> trained seeds -> run directory.

`run(config, out_dir)` trains every seed of one configuration in one compiled
program, writes `config.json`, `metrics.jsonl` (per step, per seed),
checkpoints (orbax) and `summary.json`, and prints a summary table. The same
`out_dir` with `resume=True` continues an interrupted run from its latest
checkpoint and ends with the same parameters as an uninterrupted run.

A run is a few phases, each a module of its own: `plan` (the saved config on
resume, the task built once, `validation`, the seed layout: nothing compiles
or touches disk yet), then, in the claimed directory (`ownership`), `start`
(fresh or restored states, config.json), `loop` (the compiled `chunks`,
their rows, checkpoints and signals), and `final` (the test of each seed's
best parameters, summary.json).
"""
import ntm_jax.runs.faults as faults
import ntm_jax.runs.final as final
import ntm_jax.runs.loop as loop
import ntm_jax.runs.ownership as ownership
import ntm_jax.runs.plan as plan_lib
import ntm_jax.runs.start as start_lib
from ntm_jax.runs.chunks import make_chunk
from ntm_jax.runs.validation import validate

RunInterrupted = ownership.RunInterrupted
RunFailed = faults.RunFailed

__all__ = ["RunFailed", "RunInterrupted", "make_chunk", "run", "validate"]


def run(config, out_dir: str, **options) -> dict:
  """Trains all seeds of `config`, writes the run directory, returns the summary.

  Args:
    config: the `ExperimentConfig`.
    out_dir: the run directory; with resume=True its config.json wins.
    **options: the fields of `plan.RunOptions`, by name:
      resume: continue from the latest usable checkpoint in out_dir (an
        unreadable latest one falls back to the previous); nothing on disk
        changes until the restore has succeeded.
      resume_steps: with resume, train to this many steps instead of the
        saved config's (extends a finished run; config.json is updated to
        match). A cosine learning-rate schedule is stretched to the new total
        from the resumed step on; a constant one makes this the same as one
        longer run.
      overwrite: replace a run already in out_dir (its files are deleted).
      devices: how many local devices share the seeds (default: all).
      progress: show a live progress bar.
      initial_states: optional stacked TrainStates to start from (tests use
        it to give one seed its own learning rate).
      log: where one-line messages go.
      loggers: `ntm_jax.runs.loggers.RunLogger`s (e.g. W&B); their failures
        never stop training.
      optimizer: None for the config's optimizer, or any optax
        GradientTransformation (its updates are applied as they are; it
        carries its own learning rate; a run trained with one is resumed by
        passing the same one).
      task: the task object config.task names, already built (None: built
        from the config); used only when the trained config names that task.
      finish: optional `finish(out_dir, summary)`, called after summary.json
        while the run still owns out_dir (the experiments draw the plots).

  Raises:
    ValueError: (one line) bad settings, out_dir in use by a live run (see
      `ownership`) or holding a run without resume/overwrite, no usable
      checkpoint to resume; before anything compiles or changes on disk.
    ownership.RunInterrupted: SIGTERM or SIGINT arrived; the run finished its
      chunk and saved a checkpoint first (handlers are installed only while
      the training loop runs, and the previous ones restored after).
    faults.RunFailed: (one line) the run could not go on: a checkpoint save
      failed (training stopped at it; earlier checkpoints are intact) or XLA
      ran out of memory. A directory this run created and trained nothing
      into is removed.
  """
  options = plan_lib.RunOptions(**options)
  plan = plan_lib.plan_run(config, out_dir, options)
  created = ownership.missing_root(out_dir)
  try:
    with ownership.claim(out_dir, options.resume, options.overwrite, plan.main):
      started = start_lib.start_or_resume(plan, options.initial_states)
      at, clock = loop.train(plan, started)
      summary = final.finish_run(plan, started.start.step, at, clock, started.metrics.gaps)
      if options.finish is not None and plan.main:
        options.finish(out_dir, summary)
      return summary
  except faults.RunFailed:
    if plan.main:  # after the lock is released: its file goes too
      ownership.remove_if_untrained(out_dir, created)
    raise
