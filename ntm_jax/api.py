"""One call that trains many seeds of one configuration: `train_seeds`."""
import dataclasses
import os
from typing import Optional, Union

from ntm_jax.config import ExperimentConfig, ModelConfig, TrainConfig


def task_name(task, task_options=None) -> tuple:
  """(name, options) recorded in config.json for `task`: a registered name or
  "module:Class" string as given, or for a task object the import path of
  its class; the options: `task_options` ({option: value}) if given, else
  for a dataclass task object its fields that differ from their defaults."""
  given = () if task_options is None else tuple(sorted(dict(task_options).items()))
  if isinstance(task, str):
    return task, given
  cls = task if isinstance(task, type) else type(task)
  from ntm_jax import tasks
  registered = [name for name, known in tasks.TASKS.items() if known is cls]
  name = registered[0] if registered else f"{cls.__module__}:{cls.__qualname__}"
  if cls.__module__ == "__main__" and not registered:
    raise ValueError(f"task class {cls.__qualname__} is defined in __main__; put it in "
                     "a module of its own so the run can be resumed and inspected")
  if task_options is not None:
    return name, given
  options = ()
  if not isinstance(task, type) and dataclasses.is_dataclass(task):
    defaults = cls()  # a second task object, only to read the defaults
    options = tuple(sorted((f.name, getattr(task, f.name)) for f in dataclasses.fields(task)
                           if f.init and getattr(task, f.name) != getattr(defaults, f.name)))
  return name, options


def train_seeds(task, model_config: ModelConfig, train_config: TrainConfig,
                out_dir: Optional[str] = None, *, task_options=None, optimizer=None,
                devices: Optional[int] = None, resume: bool = False,
                resume_steps: Optional[int] = None, overwrite: bool = False,
                checkpoint_every: int = 1000, plots: bool = True,
                progress: bool = True, loggers=(), log=print) -> dict:
  """Trains train_config.seeds seeds of `model_config` on `task` in one
  compiled program and returns the summary (summary.json's content). The
  command-line experiments (`experiments/common.py` `main_for`) come in here.

  Args:
    task: a task name ("copy"), an import path "module:Class", or a task
      object / class following `ntm_jax.tasks.Task`, defined in an importable
      module (config.json records its import path, so the run can be resumed
      and inspected from anywhere the module is importable). A task object
      is trained as it is, never built again.
    model_config: `NTMConfig` or `LSTMConfig`, sized for the task.
    train_config: `TrainConfig`.
    out_dir: the run directory (default runs/<task>/<timestamp>).
    task_options: {option: value}: what a task given by name or class is
      built with; for a task object, the options it was built with, which
      config.json records instead of its fields that differ from their
      defaults. Either way they are config.json's "task_options".
    optimizer: None for train_config's, or any optax GradientTransformation
      (applied as it is; it carries its own learning rate).
    devices: devices sharing the seeds (default: all local ones). On a CPU,
      JAX is asked for one device per core, which works only before JAX's
      first computation in this process; if it is too late, a line says so
      and the seeds share the devices JAX already has.
    resume: continue the run in out_dir (its config.json wins over the
      configs given here).
    resume_steps: with resume, train to this many steps instead of the saved
      config's (see `ntm_jax.runs.engine.run`).
    overwrite: replace a run already in out_dir (its files are deleted);
      without it or resume, a directory holding a run is refused.
    checkpoint_every, plots: as the flags of the same names.
    progress, loggers, log: the live bar, `ntm_jax.runs.loggers.RunLogger`s
      and where one-line messages go.

  Raises:
    ValueError: (one line) bad settings or out_dir, before anything
      compiles or changes on disk (`ntm_jax.runs.engine.run`).
    ntm_jax.runs.faults.RunFailed: (one line) a started run that could not
      go on (a failed checkpoint save, out of memory); what it saved stays.
  """
  from ntm_jax.training import devices as devices_lib
  if not devices_lib.use_all_cpu_cores() and devices_lib.fewer_devices_than_cores():
    log(devices_lib.too_late_message())
  name, options = task_name(task, task_options)
  config = ExperimentConfig(task=name, task_options=options, model=model_config,
                            train=train_config, checkpoint_every=checkpoint_every,
                            plots=plots)
  built = None if isinstance(task, (str, type)) else task
  from ntm_jax.runs import engine, rundir
  out_dir = out_dir or rundir.default_out_dir(name)
  return engine.run(config, out_dir, resume=resume, resume_steps=resume_steps,
                    overwrite=overwrite, devices=devices, progress=progress, loggers=loggers,
                    log=log, optimizer=optimizer, task=built,
                    finish=lambda run_dir, summary: plots_if_asked(run_dir, summary, log))


def plots_if_asked(out_dir: str, summary: dict, log=print) -> None:
  """`draw_plots` when the run's config.json asks for plots (a resumed run
  follows its saved config, not the caller's flags)."""
  from ntm_jax.runs import rundir
  if rundir.saved_config(out_dir).plots:
    draw_plots(out_dir, summary, log)


def draw_plots(out_dir: str, summary: dict, log=print) -> None:
  """The run's pictures into out_dir/plots/, listed in summary.json; a
  failure costs a warning, never the results."""
  from ntm_jax.runs import rundir
  try:
    from ntm_jax.analysis import inspection  # matplotlib: only when drawing
    drawn = inspection.write_run_plots(out_dir)
    summary["plots"] = [os.path.relpath(p, out_dir) for p in drawn["paths"]]
    rundir.write_json(os.path.join(out_dir, "summary.json"), summary)
  except Exception as error:  # pictures must never cost the results
    log(f"warning: drawing the plots failed ({error!r}); results are saved")
