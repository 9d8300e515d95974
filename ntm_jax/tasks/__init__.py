"""Algorithmic tasks as pure JAX samplers, and the registry of task names.

What a task is: `ntm_jax.tasks.base.Task`. A task is named either by its
key in TASKS ("copy") or by the import path "module:Class" of a class of
your own, importable from PYTHONPATH.
"""
import importlib

from ntm_jax.tasks.base import Task, sequence_metrics, sigmoid_sequence_metrics
from ntm_jax.tasks.associative_recall import AssociativeRecallTask
from ntm_jax.tasks.copy import CopyTask
from ntm_jax.tasks.dyck import DyckTask
from ntm_jax.tasks.ngrams import NGramsTask
from ntm_jax.tasks.priority_sort import PrioritySortTask
from ntm_jax.tasks.repeat_copy import RepeatCopyTask

TASKS = {"copy": CopyTask, "repeat_copy": RepeatCopyTask,
         "associative_recall": AssociativeRecallTask, "ngrams": NGramsTask,
         "priority_sort": PrioritySortTask, "dyck": DyckTask}


def task_class(name: str):
  """The class behind a task name or "module:Class" import path; one-line
  ValueError if there is none."""
  if name in TASKS:
    return TASKS[name]
  if ":" not in name:
    raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)} or give "
                     "MODULE:CLASS of a task of your own")
  module_name, _, class_name = name.partition(":")
  try:
    module = importlib.import_module(module_name)
  except Exception as error:  # the user's module: any import error is theirs
    raise ValueError(f"task {name!r}: cannot import {module_name!r} "
                     f"({type(error).__name__}: {error}); is it on PYTHONPATH?") from None
  cls = getattr(module, class_name, None)
  if cls is None:
    raise ValueError(f"task {name!r}: module {module_name!r} has no {class_name!r}")
  return cls


def make_task(name: str, **kwargs):
  """A task object from its name and options, checked against the protocol."""
  cls = task_class(name)
  try:
    task = cls(**kwargs)
  except TypeError as error:
    raise ValueError(f"bad options for task {name!r}: {error}") from None
  missing = [member for member in ("input_size", "output_size", "min_length",
                                   "memory_needed", "sequence_steps", "sample")
             if not hasattr(task, member)]
  if missing:
    raise ValueError(f"task {name!r} lacks {missing} (see ntm_jax.tasks.base.Task)")
  return task


__all__ = ["Task", "sequence_metrics", "sigmoid_sequence_metrics", "task_class",
           "AssociativeRecallTask", "CopyTask", "DyckTask", "NGramsTask",
           "PrioritySortTask", "RepeatCopyTask", "TASKS", "make_task"]
