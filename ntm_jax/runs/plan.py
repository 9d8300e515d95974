"""What a run is asked for (`RunOptions`) and the fixed plan it follows
(`RunPlan`), made by `plan_run` before anything compiles or touches disk:
the config (the saved one on resume), the task built once and validated, and
the seeds laid out over the devices."""
import dataclasses
import time
from typing import Any, Callable, Optional, Sequence

import jax

from ntm_jax import training
from ntm_jax.config import ExperimentConfig
import ntm_jax.runs.rundir as rundir
import ntm_jax.runs.validation as validation
from ntm_jax.runs.loggers import SafeLoggers
from ntm_jax.training import distributed


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How to run a config; `ntm_jax.runs.engine.run` documents each field."""
  resume: bool = False
  resume_steps: Optional[int] = None
  overwrite: bool = False
  devices: Optional[int] = None
  progress: bool = True
  initial_states: Any = None
  log: Callable[[str], None] = print
  loggers: Sequence = ()
  optimizer: Any = None
  task: Any = None
  finish: Optional[Callable[[str, dict], None]] = None


@dataclasses.dataclass(frozen=True)
class RunPlan:
  """Everything a run keeps fixed from its start to its summary.

  Attributes:
    config: the config trained (on resume, the run directory's own).
    out_dir: the run directory.
    task: the task object, built once.
    mesh: the 1-D "seeds" device mesh.
    padded_seeds: seeds actually run (config.train.seeds plus padding to
      whole groups on every device; the padding's results are dropped).
    optimizer: None for the config's, or an optax GradientTransformation.
    log, loggers, progress: where messages go, the `SafeLoggers`, the bar
      (on every process but the first: silent, none, off).
    main: whether this process writes the run's shared files.
    resume: whether the run continues the one in out_dir.
    wall_start: `time.perf_counter()` when the run was asked for.
  """
  config: ExperimentConfig
  out_dir: str
  task: Any
  mesh: jax.sharding.Mesh
  padded_seeds: int
  optimizer: Any
  log: Callable[[str], None]
  loggers: SafeLoggers
  progress: bool
  main: bool
  resume: bool
  wall_start: float

  @property
  def seed_sharding(self) -> jax.sharding.NamedSharding:
    """Arrays with a leading seed axis, split over the mesh."""
    return jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("seeds"))


def resumed_config(out_dir: str, resume_steps: Optional[int], log) -> ExperimentConfig:
  """The config a resumed run trains: its config.json, extended to
  `resume_steps` steps if given."""
  config = rundir.saved_config(out_dir)
  if resume_steps is not None and resume_steps != config.train.steps:
    log(f"training to step {resume_steps} (the saved config says {config.train.steps})")
    config = dataclasses.replace(
        config, train=dataclasses.replace(config.train, steps=resume_steps))
  log(f"resuming {out_dir} with its saved config.json (other settings are ignored)")
  return config


def lay_out_seeds(config: ExperimentConfig, devices: Optional[int]) -> tuple:
  """(mesh, padded seed count): the seeds over `devices` local devices
  (None: all), padded so every device holds whole groups
  (`training.padded_seed_count`)."""
  mesh = distributed.seed_mesh(devices)
  padded_seeds = training.padded_seed_count(
      config.train.seeds, mesh.size, training.default_group_target(
          mesh.devices.flat[0].platform, config.model))
  return mesh, padded_seeds


def _same_task(a: ExperimentConfig, b: ExperimentConfig) -> bool:
  """Whether two configs name the same task with the same options."""
  return (a.task, dict(a.task_options)) == (b.task, dict(b.task_options))


def plan_run(config: ExperimentConfig, out_dir: str, options: RunOptions) -> RunPlan:
  """The plan of training `config` into out_dir as `options` ask.

  Raises ValueError (one line) for bad settings, an unreadable saved config
  or a device count this machine lacks; nothing has compiled or changed on
  disk then.
  """
  wall_start = time.perf_counter()
  # Several processes (hosts) share the seeds: every one trains its own and
  # writes its checkpoint shards; only the first writes the run's files and
  # talks to the user and the loggers.
  main = distributed.is_main_process()
  log, progress, loggers = options.log, options.progress, options.loggers
  if not main:
    log, progress, loggers = (lambda _: None), False, ()
  asked = config
  if options.resume:
    config = resumed_config(out_dir, options.resume_steps, log)
  # A task built by the caller serves only the task the trained config names.
  task = (options.task if options.task is not None and _same_task(asked, config)
          else config.make_task())
  validation.validate(config, task)
  mesh, padded_seeds = lay_out_seeds(config, options.devices)
  training.check_fits(config, mesh.devices.flat, task)  # before compiling, before the disk
  given = options.initial_states
  if given is not None and jax.tree_util.tree_leaves(given)[0].shape[0] != padded_seeds:
    raise ValueError(f"initial_states must hold {padded_seeds} seeds")
  return RunPlan(config=config, out_dir=out_dir, task=task, mesh=mesh,
                 padded_seeds=padded_seeds, optimizer=options.optimizer, log=log,
                 loggers=SafeLoggers(loggers, log), progress=progress, main=main,
                 resume=options.resume, wall_start=wall_start)
