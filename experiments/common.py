"""Flags every experiment shares, and flags -> configs -> `ntm_jax.train_seeds`.

The training, model and run settings are declared once, as fields of the
dataclasses in `ntm_jax/config.py`; `define_flags` turns every field with a
flag into an absl flag with the field's help text, and `main_for` reads them
back field by field into configs and hands them to `ntm_jax.api.train_seeds`,
the one front door of a run (Python callers use it directly). Each
experiment module only names its task and its defaults:

    from experiments import common
    common.define_flags(max_length=20, steps=10_000, activation="relu")
    if __name__ == "__main__":
      common.main_for("copy")
"""
import dataclasses
import sys
import typing

from absl import app
from absl import flags

import ntm_jax.config as config_lib
import ntm_jax.settings as settings

FLAGS = flags.FLAGS
# The configs whose fields are flags, and the run-level flags beside them.
FLAGGED_CONFIGS = (config_lib.NTMConfig, config_lib.LSTMConfig, config_lib.TrainConfig,
                   config_lib.ExperimentConfig)


def _define(name: str, field: dataclasses.Field, default) -> None:
  """One absl flag for a config field, typed by the field's annotation.
  Bounds and choices are the config's to check, so every bad value gets the
  same one-line "error: ..." before anything compiles."""
  help_text = field.metadata["help"]
  kind = field.type
  if typing.get_origin(kind) is typing.Union:  # Optional[int]
    kind = [k for k in typing.get_args(kind) if k is not type(None)][0]
  if kind is bool:
    flags.DEFINE_bool(name, default, help_text)
  elif kind is int:
    flags.DEFINE_integer(name, default, help_text)
  elif kind is float:
    flags.DEFINE_float(name, default, help_text)
  elif kind is str:
    flags.DEFINE_string(name, default, help_text)
  else:  # a tuple of ints
    flags.DEFINE_list(name, [str(v) for v in default], help_text)


def define_flags(**defaults) -> None:
  """Defines the shared flags, with this experiment's defaults by flag name
  (e.g. max_length=20, activation="relu", seeds=8)."""
  known = set()
  for cls in FLAGGED_CONFIGS:
    for name, field in settings.flag_fields(cls):
      known.update((name, field.name))
      default = defaults.get(name, defaults.get(field.name, field.default))
      if name == "curriculum_start" and name not in defaults:
        default = defaults.get("min_length", field.default)
      _define(name, field, default)
  unknown = set(defaults) - known
  if unknown:
    raise TypeError(f"define_flags: no such settings {sorted(unknown)}")
  flags.DEFINE_string("model", "ntm", "ntm or lstm (the paper's LSTM baseline).")
  # Where and how to run: not part of a run's results.
  flags.DEFINE_string("out_dir", None, "Run directory (default runs/<task>/<timestamp>).")
  flags.DEFINE_bool("resume", False, "Continue the run in --out_dir from its last checkpoint "
                    "(its config.json wins; --steps, if given, extends the run).")
  flags.DEFINE_bool("overwrite", False, "Replace the run already in --out_dir (its files are "
                    "deleted); without it or --resume such a directory is refused.")
  flags.DEFINE_integer("devices", None, "Devices sharing the seeds (default: all local).")
  flags.DEFINE_bool("progress", True, "Show a live progress bar.")
  # Weights & Biases. The default never blocks: off unless WANDB_MODE says.
  from ntm_jax.runs import wandb_logger
  flags.DEFINE_string("wandb", wandb_logger.default_mode(),
                      f"Log to W&B: {', '.join(wandb_logger.MODES)}.")
  flags.DEFINE_string("wandb_project", None, "W&B project (default WANDB_PROJECT or ntm_jax).")
  flags.DEFINE_string("wandb_entity", None, "W&B entity (default WANDB_ENTITY).")
  flags.DEFINE_string("wandb_name", None, "W&B run name.")


def _field_values(cls, **fixed) -> dict:
  """The flags' values for `cls`'s flagged fields, as the field types want."""
  values = dict(fixed)
  for name, field in settings.flag_fields(cls):
    value = FLAGS[name].value
    if isinstance(field.default, tuple):
      value = _integers(name, value)
    values[field.name] = value
  return values


def _integers(name: str, items: list) -> tuple:
  """A list flag's items as integers. A sweep value that is a list reaches the
  flag as Python prints it, "[24, 32, 48]" (W&B and sweeps.run both format
  `--name=value` with str), so brackets and spaces around items are dropped."""
  text = ",".join(items).strip()
  if text.startswith("[") and text.endswith("]"):
    text = text[1:-1]
  if not text.strip():
    return ()
  try:
    return tuple(int(x) for x in text.split(","))
  except ValueError:
    raise ValueError(f"--{name} must be integers, got {','.join(items)}") from None


def config_from_flags(task_name: str, task_options=()):
  """The ExperimentConfig the flags describe, sized for its task and
  validated as a run would validate it (for tests and notebooks; `main_for`
  leaves the validation to the run); raises ValueError on a bad setting.

  task_options: (name, value) pairs, or a function of FLAGS returning a dict
  (for experiments with task flags of their own).
  """
  from ntm_jax.runs.validation import validate
  config = _settings_from_flags(task_name, task_options)
  task = config.make_task()
  config = _sized_for(config, task)
  validate(config, task)
  return config


def _settings_from_flags(task_name: str, task_options=()):
  """The ExperimentConfig from the flags, every setting checked, before jax
  loads: the model's input and output sizes, the task's to give, stand at 1
  (`_sized_for` sets them)."""
  if callable(task_options):
    task_options = task_options(FLAGS)
  task_options = tuple(sorted(dict(task_options).items()))
  if FLAGS.model not in config_lib.MODEL_CONFIGS:
    raise ValueError(f"unknown --model {FLAGS.model!r}; choose one of "
                     f"{tuple(config_lib.MODEL_CONFIGS)}")
  model_class = config_lib.MODEL_CONFIGS[FLAGS.model]
  model = model_class(**_field_values(model_class, input_size=1, output_size=1))
  train = config_lib.TrainConfig(**_field_values(config_lib.TrainConfig))
  return config_lib.ExperimentConfig(
      task=task_name, model=model, train=train, task_options=task_options,
      **{k: v for k, v in _field_values(config_lib.ExperimentConfig).items()})


def _sized_for(config, task):
  """`config` with the model's input and output sizes the task's."""
  return dataclasses.replace(config, model=dataclasses.replace(
      config.model, input_size=task.input_size, output_size=task.output_size))


def parse_flags(argv):
  """absl's flag parsing, with a bad flag as one "error: ..." line (absl's
  own message takes two lines and a usage hint). For app.run's flags_parser."""
  try:
    return FLAGS(argv)
  except flags.Error as error:
    sys.exit("error: " + " ".join(str(error).split()))


def _check_run_flags(name) -> None:
  """The run-level flags that need neither jax nor the task."""
  from ntm_jax.runs.wandb_logger import MODES
  if FLAGS.wandb not in MODES:
    raise ValueError(f"unknown --wandb {FLAGS.wandb!r}; choose one of {tuple(MODES)}")
  if FLAGS.devices is not None and FLAGS.devices < 1:
    raise ValueError(f"--devices must be >= 1, got {FLAGS.devices}")
  if FLAGS.resume and FLAGS.overwrite:
    raise ValueError("--resume and --overwrite exclude each other")
  if FLAGS.resume and not FLAGS.out_dir:
    raise ValueError("--resume needs the --out_dir of the run to continue")
  if not FLAGS.resume and not name:
    raise ValueError("--task is required: a task name or MODULE:CLASS")


def _configs_and_task(task_name, task_options):
  """(config, task) of this command line: the flags' config sized for its
  task, built here once, or with --resume the run's own config.json and no
  task (the run builds the one its config names). Starts JAX's devices."""
  from ntm_jax.runs import rundir
  # The run's own config.json with --resume, not the flags (they may differ).
  config = (rundir.saved_config(FLAGS.out_dir) if FLAGS.resume
            else _settings_from_flags(task_name, task_options))
  from ntm_jax.training import devices
  devices.use_all_cpu_cores()  # before JAX starts its backend
  from ntm_jax.training import distributed
  distributed.initialize_from_env()  # one of several processes? (no-op otherwise)
  if FLAGS.resume:
    return config, None
  task = config.make_task()
  return _sized_for(config, task), task


def main_for(task_name=None, task_options=()) -> None:
  """Runs the experiment for `task_name` (None: the --task flag's) from the
  command line: flags -> configs -> `ntm_jax.api.train_seeds`. Every input is
  checked before anything compiles or touches the disk: a bad one exits with
  one line "error: ..."."""
  def main(argv):
    if len(argv) > 1:
      sys.exit(f"error: unexpected arguments {argv[1:]}")
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # orbax's info lines would bury the bar
    from ntm_jax.runs import ownership, rundir
    name = task_name or FLAGS.task
    try:
      _check_run_flags(name)
      config, task = _configs_and_task(name, task_options)
      out_dir = FLAGS.out_dir or rundir.default_out_dir(config.task)
      ownership.check(out_dir, FLAGS.resume, FLAGS.overwrite)  # in use? holds a run?
      rundir.check_out_dir(out_dir)
    except ValueError as error:
      sys.exit(f"error: {error}")
    from ntm_jax import api
    from ntm_jax.runs import engine
    from ntm_jax.runs.wandb_logger import WandbLogger
    try:
      loggers = [WandbLogger(FLAGS.wandb, FLAGS.wandb_project, FLAGS.wandb_entity,
                             FLAGS.wandb_name)] if FLAGS.wandb != "off" else []
      # --steps given with --resume extends the run; every other flag is
      # ignored in favour of the run's config.json.
      resume_steps = FLAGS.steps if FLAGS.resume and FLAGS["steps"].present else None
      api.train_seeds(config.task if task is None else task, config.model, config.train,
                      out_dir, task_options=dict(config.task_options),
                      checkpoint_every=config.checkpoint_every, plots=config.plots,
                      devices=FLAGS.devices, resume=FLAGS.resume, resume_steps=resume_steps,
                      overwrite=FLAGS.overwrite, progress=FLAGS.progress, loggers=loggers)
    except (ValueError, engine.RunFailed) as error:  # RunFailed: a started run's end
      sys.exit(f"error: {error}")
    except engine.RunInterrupted as stopped:  # SIGTERM / SIGINT: saved, then out
      print(stopped, file=sys.stderr)
      sys.exit(stopped.exit_code)
    print(f"results in {out_dir}")
  app.run(main, flags_parser=parse_flags)
