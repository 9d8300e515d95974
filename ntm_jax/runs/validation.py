"""The checks a run's settings must pass before anything compiles: `validate`."""
from ntm_jax import models
from ntm_jax import training
from ntm_jax.config import ExperimentConfig


def validate(config: ExperimentConfig, task=None) -> None:
  """Raises ValueError (one line) for settings that cannot work; no compile.

  task: the task object `config` names, if already built (None: built here,
  so an unknown task or option is refused here too).
  """
  if task is None:
    task = config.make_task()
  if (config.model.input_size, config.model.output_size) != (task.input_size, task.output_size):
    raise ValueError(
        f"model sizes {config.model.input_size}->{config.model.output_size} do not "
        f"match task {config.task!r} ({task.input_size}->{task.output_size})")
  t = config.train
  smallest = getattr(task, "min_length", 1)
  if t.min_length < smallest or min(t.test_lengths) < smallest:
    raise ValueError(f"task {config.task!r} needs lengths >= {smallest}, got "
                     f"min_length {t.min_length} and test_lengths {t.test_lengths}")
  training.check_first_batch(task, t, config.model, config.task)
  for name, memory_size, length in _memories(config):
    if memory_size < config.model.shift_range:
      raise ValueError(f"{name} {memory_size} is smaller than shift_range "
                       f"{config.model.shift_range}")
    if task.memory_needed(length) > memory_size:
      raise ValueError(f"length {length} needs {task.memory_needed(length)} memory rows "
                       f"but {name} is {memory_size}")


def _memories(config: ExperimentConfig) -> list:
  """(setting, memory rows, longest length it must hold) of every memory a
  run uses, in the order they are checked; none for a model without one."""
  model, t = config.model, config.train
  own = models.memory_size_for(model)
  if own is None:
    return []
  longest = training.draws.padded_length(t)
  return [("memory_rows", own, longest),
          *[("train_memory_sizes", n, longest) for n in t.train_memory_sizes],
          ("eval_memory_size", models.memory_size_for(model, t.eval_memory_size), t.max_length),
          ("test_memory_size", models.memory_size_for(model, t.test_memory_size),
           max(t.test_lengths))]
