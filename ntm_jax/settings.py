"""How a setting is declared and checked (`ntm_jax.config` declares them).

`setting` makes a dataclass field that carries its help text and, unless
told otherwise, is also a command-line flag of every experiment
(`flag_fields`; `experiments/common.py` builds the flags). `check` and
`check_fields` raise the one-line ValueError a bad setting gets.
"""
import dataclasses
import math
from typing import Optional


def setting(default, help: str, flag: Optional[str] = None, choices=None):
  """A dataclass field that is also a command-line flag named `flag` (by
  default the field's own name; "" for no flag)."""
  metadata = {"help": help, "flag": flag, "choices": choices}
  if isinstance(default, (list, tuple)):
    return dataclasses.field(default=tuple(default), metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def flag_fields(cls) -> list:
  """(flag name, field) of every field of `cls` that is a flag."""
  return [(field.metadata["flag"] or field.name, field) for field in dataclasses.fields(cls)
          if "help" in field.metadata and field.metadata["flag"] != ""]


def check(condition: bool, message: str) -> None:
  if not condition:
    raise ValueError(message)


def check_fields(config) -> None:
  """Choices declared with the fields; numbers finite."""
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    choices = field.metadata.get("choices")
    if choices:
      check(value in choices,
            f"unknown {field.name} {value!r}; choose one of {tuple(choices)}")
    if isinstance(value, float):
      check(math.isfinite(value), f"{field.name} must be finite, got {value}")
