"""Flags every experiment shares, and the flags -> config -> run glue.

Each experiment module only names its task and its task defaults:

    from experiments import common
    common.define_flags(task="copy", max_length=20, ...)
    if __name__ == "__main__":
      common.main_for("copy")
"""
import sys
from typing import Optional

from absl import app
from absl import flags

FLAGS = flags.FLAGS


# Bounds are checked by the configs, so every bad value gets the same
# one-line "error: ..." before anything compiles.
def define_flags(*, max_length: int, test_lengths, min_length: int = 1,
                 steps: int, learning_rate: float, batch_size: int,
                 controller: str = "ff", controller_size: int = 100,
                 activation: str = "tanh", read_heads: int = 1,
                 write_heads: int = 1, curriculum_steps: int = 0,
                 curriculum_start: Optional[int] = None, converge_threshold: float = 0.1,
                 test_memory_size: int = 128, seeds: int = 30,
                 eval_every: int = 250) -> None:
  """Defines the shared flags with this experiment's defaults."""
  d = flags
  # What to run.
  d.DEFINE_integer("seeds", seeds, "Seeds trained at once in one program.")
  d.DEFINE_integer("seed", 0, "Base seed: seed i uses PRNGKey(seed + i).")
  d.DEFINE_integer("steps", steps, "Training steps per seed.")
  d.DEFINE_integer("batch_size", batch_size, "Sequences per seed per step.")
  d.DEFINE_enum("model", "ntm", ["ntm", "lstm"], "NTM or the LSTM baseline.")
  # NTM.
  d.DEFINE_string("controller", controller, "Controller: ff (feed-forward) or lstm.")
  d.DEFINE_integer("controller_size", controller_size, "Units per controller layer.")
  d.DEFINE_integer("controller_layers", 1, "Controller layers.")
  d.DEFINE_string("activation", activation, "Feed-forward activation: tanh, relu or sigmoid.")
  d.DEFINE_integer("memory_rows", 128, "Memory rows N while training.")
  d.DEFINE_integer("memory_width", 20, "Memory width M.")
  d.DEFINE_integer("read_heads", read_heads, "Read heads.")
  d.DEFINE_integer("write_heads", write_heads, "Write heads.")
  d.DEFINE_integer("shift_range", 3, "Allowed shifts, odd: 3 means -1, 0, +1.")
  d.DEFINE_bool("forward_only_shift", False, "Allow only shifts 0..+k.")
  d.DEFINE_string("memory_init", "constant", "Memory init: constant, learned or random.")
  # LSTM baseline.
  d.DEFINE_integer("lstm_size", 256, "LSTM baseline units per layer.")
  d.DEFINE_integer("lstm_layers", 3, "LSTM baseline layers.")
  # Optimisation.
  d.DEFINE_string("optimizer", "adam", "adam or rmsprop (the paper's).")
  d.DEFINE_float("lr", learning_rate, "Learning rate.")
  d.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"],
                "Learning-rate schedule over the run.")
  d.DEFINE_float("lr_final_fraction", 0.1, "With cosine: final lr as a fraction of --lr.")
  d.DEFINE_float("clip_norm", 10.0, "Clip gradients by this global norm.")
  d.DEFINE_integer("min_length", min_length, "Shortest training length.")
  d.DEFINE_integer("max_length", max_length, "Longest training length.")
  d.DEFINE_integer("curriculum_steps", curriculum_steps,
                   "Grow the longest training length over this many steps (0: off).")
  d.DEFINE_integer("curriculum_start", min_length if curriculum_start is None else curriculum_start, "Longest training length at step 0.")
  # Evaluation and convergence.
  d.DEFINE_integer("eval_every", eval_every, "Steps per compiled chunk; evaluate after each.")
  d.DEFINE_integer("eval_batch", 32, "Fresh sequences per seed per evaluation.")
  d.DEFINE_float("converge_threshold", converge_threshold,
                "Converged: the task's eval value (bit errors per sequence; for "
                "ngrams the relative excess over the optimal cost) below this.")
  d.DEFINE_integer("converge_patience", 2, "... for this many evaluations in a row.")
  d.DEFINE_bool("stop_when_converged", False, "Stop once every seed converged or diverged.")
  d.DEFINE_list("test_lengths", [str(n) for n in test_lengths], "Generalisation test lengths.")
  d.DEFINE_integer("test_batch", 32, "Test sequences per length per seed.")
  d.DEFINE_integer("test_memory_size", test_memory_size, "Memory rows N at test time.")
  # Outputs and hardware.
  d.DEFINE_string("out_dir", None, "Run directory (default runs/<task>/<timestamp>).")
  d.DEFINE_bool("resume", False, "Continue the run in --out_dir from its last checkpoint "
                "(its config.json wins; --steps, if given, extends the run).")
  d.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.")
  d.DEFINE_integer("devices", None, "Devices sharing the seeds (default: all local).")
  d.DEFINE_bool("progress", True, "Show a live progress bar.")
  d.DEFINE_bool("plots", True, "Draw the run's PNGs into <out_dir>/plots/ at the end.")
  # Weights & Biases. The default never blocks: off unless WANDB_MODE says.
  from ntm_jax import wandb_logger
  d.DEFINE_enum("wandb", wandb_logger.default_mode(), list(wandb_logger.MODES),
                "Log to W&B: off, offline (sync later) or online.")
  d.DEFINE_string("wandb_project", None, "W&B project (default WANDB_PROJECT or ntm_jax).")
  d.DEFINE_string("wandb_entity", None, "W&B entity (default WANDB_ENTITY).")
  d.DEFINE_string("wandb_name", None, "W&B run name.")


_loaded = None  # the experiment whose flags FLAGS holds now


def load_experiment(name: str):
  """Imports `experiments.<name>` with its own flag defaults, replacing the
  flags another experiment defined in this process (absl defines flags once
  per process; tests and notebooks look at several experiments)."""
  import importlib
  global _loaded
  module = name if name.startswith("experiments.") else f"experiments.{name}"
  if _loaded == module and module in sys.modules:
    return sys.modules[module]
  for flag in list(FLAGS):
    if (FLAGS.find_module_defining_flag(flag) or "").startswith("experiments."):
      delattr(FLAGS, flag)
  for other in [m for m in sys.modules if m.startswith("experiments.")
                and m not in ("experiments.common", "experiments.__init__")]:
    del sys.modules[other]
  loaded = importlib.import_module(module)
  _loaded = module
  return loaded


def config_from_flags(task_name: str, task_options=()):
  """Builds the ExperimentConfig; raises ValueError on a bad setting.

  task_options: (name, value) pairs, or a function of FLAGS returning a dict
  (for experiments with task flags of their own).
  """
  from ntm_jax import NTMConfig, LSTMConfig
  from ntm_jax.experiment import ExperimentConfig
  from ntm_jax.tasks import make_task
  from ntm_jax.train import TrainConfig

  if callable(task_options):
    task_options = task_options(FLAGS)
  task_options = tuple(sorted(dict(task_options).items()))
  task = make_task(task_name, **dict(task_options))
  f = FLAGS
  if f.model == "ntm":
    model = NTMConfig(
        input_size=task.input_size, output_size=task.output_size,
        controller=f.controller, controller_size=f.controller_size,
        controller_layers=f.controller_layers, controller_activation=f.activation,
        memory_rows=f.memory_rows, memory_width=f.memory_width,
        read_heads=f.read_heads, write_heads=f.write_heads,
        shift_range=f.shift_range, forward_only_shift=f.forward_only_shift,
        memory_init=f.memory_init)
  else:
    model = LSTMConfig(input_size=task.input_size, output_size=task.output_size,
                       size=f.lstm_size, layers=f.lstm_layers)
  try:
    test_lengths = tuple(int(x) for x in f.test_lengths)
  except ValueError:
    raise ValueError(f"test_lengths must be integers, got {f.test_lengths}") from None
  train = TrainConfig(
      seeds=f.seeds, seed=f.seed, steps=f.steps, batch_size=f.batch_size,
      optimizer=f.optimizer, learning_rate=f.lr, clip_norm=f.clip_norm,
      lr_schedule=f.lr_schedule, lr_final_fraction=f.lr_final_fraction,
      min_length=f.min_length, max_length=f.max_length,
      curriculum_steps=f.curriculum_steps, curriculum_start=f.curriculum_start,
      eval_every=f.eval_every, eval_batch=f.eval_batch,
      converge_threshold=f.converge_threshold, converge_patience=f.converge_patience,
      stop_when_converged=f.stop_when_converged, test_lengths=test_lengths,
      test_batch=f.test_batch, test_memory_size=f.test_memory_size)
  config = ExperimentConfig(task=task_name, model=model, train=train,
                            task_options=task_options,
                            checkpoint_every=f.checkpoint_every)
  from ntm_jax.experiment import validate
  validate(config)
  return config


def main_for(task_name: str, task_options=()) -> None:
  """Runs the experiment named `task_name` from the command line."""
  def main(argv):
    if len(argv) > 1:
      sys.exit(f"error: unexpected arguments {argv[1:]}")
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # orbax's info lines would bury the bar
    from ntm_jax import devices
    devices.use_all_cpu_cores()  # before JAX starts its backend
    from ntm_jax import distributed
    distributed.initialize_from_env()  # one of several processes? (no-op otherwise)
    from ntm_jax import experiment
    try:
      if FLAGS.resume:
        if not FLAGS.out_dir:
          raise ValueError("--resume needs the --out_dir of the run to continue")
        # The run's own config.json, not the flags (they may differ).
        config = experiment.saved_config(FLAGS.out_dir)
      else:
        config = config_from_flags(task_name, task_options)
      out_dir = FLAGS.out_dir or experiment.default_out_dir(task_name)
      from ntm_jax.wandb_logger import WandbLogger
      loggers = [WandbLogger(FLAGS.wandb, FLAGS.wandb_project, FLAGS.wandb_entity,
                             FLAGS.wandb_name)] if FLAGS.wandb != "off" else []
      # --steps given with --resume extends the run; every other flag is
      # ignored in favour of the run's config.json.
      resume_steps = FLAGS.steps if FLAGS.resume and FLAGS["steps"].present else None
      experiment.run(config, out_dir, resume=FLAGS.resume, devices=FLAGS.devices,
                     progress=FLAGS.progress, loggers=loggers, plots=FLAGS.plots,
                     resume_steps=resume_steps)
    except ValueError as error:
      sys.exit(f"error: {error}")
    print(f"results in {out_dir}")
  app.run(main)
