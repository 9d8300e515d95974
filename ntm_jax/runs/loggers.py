"""A small logging interface the experiment engine reports through.

The engine calls, per run: `start(config, out_dir)`, then `log_chunk(step,
aggregate, per_seed)` after every compiled chunk, then `finish(summary)`.
Backends (W&B, a recording fake in tests) implement these three methods.
`SafeLoggers` shields training from them: a backend that raises is reported
in one line and dropped, and the run and its local files carry on.
"""
from typing import Callable, Protocol, Sequence


class RunLogger(Protocol):

  def start(self, config: dict, out_dir: str) -> None:
    """config: the run's config.json content."""

  def log_chunk(self, step: int, aggregate: dict, per_seed: dict) -> None:
    """aggregate: {name: float} over seeds; per_seed: {name: [value per seed]}."""

  def finish(self, summary: dict) -> None:
    """summary: the run's summary.json content."""


class SafeLoggers:
  """Fans calls out to loggers; a logger that raises is dropped, not fatal."""

  def __init__(self, loggers: Sequence[RunLogger], log: Callable[[str], None] = print):
    self.loggers = list(loggers)
    self.log = log

  def _call(self, method: str, *args) -> None:
    for logger in list(self.loggers):
      try:
        getattr(logger, method)(*args)
      except Exception as error:  # a logging backend must never stop training
        self.loggers.remove(logger)
        self.log(f"warning: {type(logger).__name__}.{method} failed ({error!r}); "
                 "continuing without it, local results are unaffected")

  def start(self, config: dict, out_dir: str) -> None:
    self._call("start", config, out_dir)

  def log_chunk(self, step: int, aggregate: dict, per_seed: dict) -> None:
    self._call("log_chunk", step, aggregate, per_seed)

  def finish(self, summary: dict) -> None:
    self._call("finish", summary)
