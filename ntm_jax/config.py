"""Every configuration of a run, as frozen dataclasses, and their JSON.

Each setting is declared once, here: its default, its bounds (checked in
`__post_init__`, one-line ValueError) and its help text, with
`ntm_jax.settings` `setting`; such a field is also a command-line flag of
every experiment (`experiments/common.py` builds the flags from them). This module
imports no jax, so the W&B logger and the sweep runner can read configs
without starting the engine.
"""
import dataclasses
from typing import ClassVar, Optional, Sequence, Tuple, Union

from ntm_jax.settings import check as _check, check_fields as _check_fields, setting

CONTROLLERS = ("ff", "lstm")
ACTIVATIONS = ("tanh", "relu", "sigmoid")
MEMORY_INITS = ("constant", "learned", "random", "first_row")
HEAD_ACTIVATIONS = ("tanh", "linear", "relu")
HEAD_INITS = ("zero", "still")
STRENGTH_ACTIVATIONS = ("softplus", "relu")
OPTIMIZERS = ("adam", "rmsprop")
LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class NTMConfig:
  """A Neural Turing Machine. Defaults are the paper's copy-task NTM.

  Graves et al. 2014, Table 1: a feed-forward controller of 100 units, one
  read and one write head, memory 128 x 20, shifts -1, 0, +1.
  """
  kind: ClassVar[str] = "ntm"
  input_size: int
  output_size: int
  controller: str = setting("ff", "Controller: ff (feed-forward) or lstm.",
                            choices=CONTROLLERS)
  controller_size: int = setting(100, "Units per controller layer.")
  controller_layers: int = setting(1, "Controller layers.")
  controller_activation: str = setting(
      "tanh", "Feed-forward activation: tanh, relu or sigmoid.", flag="activation",
      choices=ACTIVATIONS)
  memory_rows: int = setting(128, "Memory rows N while training.")
  memory_width: int = setting(20, "Memory width M.")
  read_heads: int = setting(1, "Read heads.")
  write_heads: int = setting(1, "Write heads.")
  shift_range: int = setting(3, "Allowed shifts, odd: 3 means -1, 0, +1.")
  forward_only_shift: bool = setting(False, "Allow only shifts 0..+k.")
  # A small constant memory init converged about 2x faster than learned or
  # random init in Collier & Beel 2018. Unwritten rows then have norms far
  # below addressing.NORM_EPS's floor, so content addressing sees them as
  # near-zero rows (cosine ~0), never as matches.
  # first_row: the constant, except a learned row 0, where every head starts:
  # a mark the heads can find again by content, the same for every N.
  memory_init: str = setting("constant", "Memory init: constant, learned, random (a "
                             "fresh draw per sequence) or first_row (the constant with "
                             "a learned row 0).", choices=MEMORY_INITS)
  memory_init_value: float = setting(1e-6, "Value of every cell of the constant memory init.")
  key_activation: str = setting("tanh", "Activation of the heads' keys: tanh, linear or relu.",
                                choices=HEAD_ACTIVATIONS)
  add_activation: str = setting("tanh", "Activation of the add vectors: tanh, linear or relu.",
                                choices=HEAD_ACTIVATIONS)
  strength_activation: str = setting(
      "softplus", "How the key strength beta and the sharpening gamma - 1 are made "
      "non-negative: softplus or relu.", choices=STRENGTH_ACTIVATIONS)
  # still: every head starts training keeping its weighting (gate logit
  # -STILL_LOGIT, the zero shift's logit +STILL_LOGIT), so a head parks
  # where it began, row 0, until training teaches it to move.
  head_init: str = setting("zero", "Initial biases of the head layer: zero, or still "
                           "(every head keeps its weighting until trained to move).",
                           choices=HEAD_INITS)
  # Collier & Beel 2018 clip the controller's head outputs to +-20.
  head_clip: float = setting(20.0, "Clip the controller's raw head outputs to +-this.")
  # Recompute each step in the backward pass instead of storing it: far less
  # memory traffic, faster on CPU.
  remat: bool = setting(True, "Recompute each NTM time step in the backward pass.")

  def __post_init__(self):
    _check_fields(self)
    for name in ("input_size", "output_size", "controller_size", "controller_layers",
                 "memory_rows", "memory_width", "read_heads", "write_heads"):
      _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
    _check(self.shift_range >= 1 and self.shift_range % 2 == 1,
           f"shift_range must be odd (2k+1 shifts -k..k), got {self.shift_range}")
    _check(self.shift_range <= self.memory_rows,
           f"shift_range {self.shift_range} exceeds memory_rows {self.memory_rows}")
    _check(self.memory_init_value != 0.0 or self.memory_init != "constant",
           "memory_init_value must be non-zero: an all-zero memory gives every "
           "row the same zero similarity and zero gradient")
    _check(self.head_clip > 0, f"head_clip must be > 0, got {self.head_clip}")


@dataclasses.dataclass(frozen=True)
class LSTMConfig:
  """The paper's baseline: a stack of LSTM layers and a linear read-out."""
  kind: ClassVar[str] = "lstm"
  input_size: int
  output_size: int
  size: int = setting(256, "LSTM baseline units per layer.", flag="lstm_size")
  layers: int = setting(3, "LSTM baseline layers.", flag="lstm_layers")
  # remat=True keeps only each layer's inputs for the backward pass and
  # recomputes the rest (`models/lstm_sequence.py`). Unlike the NTM's memory,
  # an LSTM's per-step state is small, so storing it is the default.
  remat: bool = setting(False, "LSTM baseline: recompute each layer in the backward pass.",
                        flag="lstm_remat")

  def __post_init__(self):
    _check_fields(self)
    for name in ("input_size", "output_size", "size", "layers"):
      _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")


ModelConfig = Union[NTMConfig, LSTMConfig]
MODEL_CONFIGS = {"ntm": NTMConfig, "lstm": LSTMConfig}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How to train; every field is shared by all seeds of a run."""
  seeds: int = setting(30, "Seeds trained at once in one program.")
  seed: int = setting(0, "Base seed: seed i uses PRNGKey(seed + i).")
  steps: int = setting(10_000, "Training steps per seed.")
  batch_size: int = setting(4, "Sequences per seed per step.")
  optimizer: str = setting("adam", "adam or rmsprop (the paper's, centred).",
                           choices=OPTIMIZERS)
  learning_rate: float = setting(1e-3, "Learning rate.", flag="lr")
  # "cosine": decay from learning_rate to lr_final_fraction * learning_rate
  # over the run; calmer late updates mean fewer converged seeds collapse.
  lr_schedule: str = setting("constant", "Learning-rate schedule over the run: "
                             "constant or cosine.", choices=LR_SCHEDULES)
  lr_final_fraction: float = setting(0.1, "With cosine: final lr as a fraction of --lr.")
  # Per seed: each seed has its own convergence state, so each can calm down
  # on its own; a seed that loses convergence gets its full rate back.
  lr_after_converged: float = setting(
      1.0, "While a seed is converged, its lr is multiplied by this (1: no change; "
      "0: frozen while converged).")
  restore_best_on_collapse: bool = setting(
      False, "A seed that loses convergence goes back to its best parameters (and a "
      "fresh optimizer state) and stays converged (collapses count these).")
  restore_optimizer_state: bool = setting(
      False, "With restore_best_on_collapse: restore the optimizer state of the best "
      "evaluation too, instead of starting the optimizer afresh.")
  average_while_converged: float = setting(
      0.0, "While a seed is converged, evaluate and report a moving average of its "
      "parameters with this decay per step (0: off; e.g. 0.999).")
  skip_spikes_while_converged: float = setting(
      0.0, "While a seed is converged, skip a step whose gradient norm exceeds this "
      "multiple of the running geometric mean of its applied steps' norms (0: off).")
  rmsprop_momentum: float = setting(0.9, "RMSProp momentum.")
  rmsprop_decay: float = setting(0.95, "RMSProp decay of the squared-gradient averages.")
  clip_norm: float = setting(10.0, "Clip gradients by this global norm.")
  clip_value: float = setting(
      0.0, "Before the global-norm clip, clip each gradient element to [-v, v] (the "
      "paper's per-element clipping; 0: off).")
  min_length: int = setting(1, "Shortest training length.")
  max_length: int = setting(20, "Longest training length.")
  max_length_while_converged: int = setting(
      0, "While a seed is converged, its training lengths go up to this instead "
      "(0: max_length).")
  curriculum_steps: int = setting(
      0, "Grow the longest training length over this many steps (0: off).")
  curriculum_start: int = setting(1, "Longest training length at step 0.")
  eval_every: int = setting(250, "Steps per compiled chunk; evaluate after each (the "
                            "last chunk is shorter when steps is not a multiple).")
  eval_batch: int = setting(32, "Fresh sequences per seed per evaluation.")
  train_memory_sizes: Tuple[int, ...] = setting(
      (), "Memory rows N of each training step, drawn per step from these (empty: "
      "the model's memory_rows).")
  # The evaluations decide convergence and each seed's reported parameters:
  # a model trained on a small memory can be judged on the test's memory.
  eval_memory_size: Optional[int] = setting(
      None, "Memory rows N of the evaluations during training (default: memory_rows).")
  converge_threshold: float = setting(
      0.1, "Converged: the task's eval value (bit errors per sequence; for ngrams "
      "the relative excess over the optimal cost) below this.")
  converge_patience: int = setting(2, "... for this many evaluations in a row.")
  stop_when_converged: bool = setting(False, "Stop once every seed converged or diverged.")
  test_lengths: Tuple[int, ...] = setting((10, 20, 40, 60, 80, 100, 120),
                                          "Generalisation test lengths.")
  test_batch: int = setting(32, "Test sequences per length per seed.")
  test_memory_size: Optional[int] = setting(128, "Memory rows N at test time.")

  def __post_init__(self):
    for name in ("test_lengths", "train_memory_sizes"):
      object.__setattr__(self, name, tuple(int(x) for x in getattr(self, name)))
    _check_fields(self)
    for name in ("seeds", "steps", "batch_size", "eval_every", "eval_batch",
                 "test_batch", "converge_patience"):
      _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
    _check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
    _check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
    _check(0 < self.lr_final_fraction <= 1, "lr_final_fraction must be in (0, 1]")
    _check(0 <= self.lr_after_converged <= 1,
           f"lr_after_converged must be in [0, 1], got {self.lr_after_converged}")
    _check(self.clip_norm > 0, f"clip_norm must be > 0, got {self.clip_norm}")
    _check(self.clip_value >= 0, f"clip_value must be >= 0 (0: off), got {self.clip_value}")
    _check(self.restore_best_on_collapse or not self.restore_optimizer_state,
           "restore_optimizer_state needs restore_best_on_collapse")
    _check(0 <= self.average_while_converged < 1,
           f"average_while_converged must be in [0, 1), got {self.average_while_converged}")
    _check(self.skip_spikes_while_converged == 0 or self.skip_spikes_while_converged >= 1,
           "skip_spikes_while_converged must be 0 (off) or >= 1, got "
           f"{self.skip_spikes_while_converged}")
    _check(0 <= self.rmsprop_momentum < 1,
           f"rmsprop_momentum must be in [0, 1), got {self.rmsprop_momentum}")
    _check(0 < self.rmsprop_decay < 1,
           f"rmsprop_decay must be in (0, 1), got {self.rmsprop_decay}")
    _check(1 <= self.min_length <= self.max_length,
           f"need 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}")
    _check(self.max_length_while_converged == 0 or
           self.max_length_while_converged >= self.max_length,
           "max_length_while_converged must be 0 (off) or >= max_length, got "
           f"{self.max_length_while_converged}")
    _check(all(n >= 1 for n in self.train_memory_sizes),
           f"train_memory_sizes must be >= 1, got {self.train_memory_sizes}")
    _check(self.curriculum_steps >= 0, "curriculum_steps must be >= 0")
    _check(self.curriculum_steps == 0
           or self.min_length <= self.curriculum_start <= self.max_length,
           f"curriculum_start must lie in [min_length, max_length], got {self.curriculum_start}")
    _check(self.converge_threshold > 0, "converge_threshold must be > 0")
    _check(len(self.test_lengths) > 0 and min(self.test_lengths) >= 1,
           f"test_lengths must be positive, got {self.test_lengths}")
    _check(self.test_memory_size is None or self.test_memory_size >= 1,
           "test_memory_size must be >= 1")
    _check(self.eval_memory_size is None or self.eval_memory_size >= 1,
           "eval_memory_size must be >= 1")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything that defines a run; saved as config.json beside its results.

  task: a registered task name ("copy") or an import path "module:Class" of
  a class following `ntm_jax.tasks.Task`, importable from PYTHONPATH.
  """
  task: str
  model: ModelConfig
  train: TrainConfig
  task_options: tuple = ()          # (name, value) pairs for the task
  checkpoint_every: int = setting(1000, "Steps between checkpoints.")
  plots: bool = setting(True, "Draw the run's PNGs into <out_dir>/plots/ at the end.")

  def __post_init__(self):
    _check(self.checkpoint_every >= 1,
           f"checkpoint_every must be >= 1, got {self.checkpoint_every}")

  @property
  def model_kind(self) -> str:
    return self.model.kind

  def make_task(self):
    from ntm_jax import tasks  # jax: only when a task is built
    return tasks.make_task(self.task, **dict(self.task_options))

  def to_json(self) -> dict:
    return {"task": self.task, "task_options": dict(self.task_options),
            "model_kind": self.model_kind, "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "checkpoint_every": self.checkpoint_every, "plots": self.plots}

  @classmethod
  def from_json(cls, data: dict, where: str = "config.json") -> "ExperimentConfig":
    """The inverse of to_json; a one-line ValueError naming `where` for
    missing or unknown keys. Keys added since a run was written take their
    defaults, so older runs still load."""
    if not isinstance(data, dict):
      raise ValueError(f"{where}: not a run config (a JSON object)")
    missing = [k for k in ("task", "model_kind", "model", "train") if k not in data]
    _check(not missing, f"{where}: missing keys {missing}")
    _check(data["model_kind"] in MODEL_CONFIGS,
           f"{where}: unknown model_kind {data['model_kind']!r}")
    try:
      return cls(task=data["task"],
                 task_options=tuple(sorted(data.get("task_options", {}).items())),
                 model=_from_dict(MODEL_CONFIGS[data["model_kind"]], data["model"], where),
                 train=_from_dict(TrainConfig, data["train"], where),
                 **{k: data[k] for k in ("checkpoint_every", "plots") if k in data})
    except (TypeError, AttributeError) as error:
      raise ValueError(f"{where}: {error}") from None


def _from_dict(cls, data, where: str):
  if not isinstance(data, dict):
    raise ValueError(f"{where}: {cls.__name__} must be a JSON object")
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(data) - names)
  _check(not unknown, f"{where}: unknown {cls.__name__} keys {unknown}")
  required = [f.name for f in dataclasses.fields(cls)
              if f.default is dataclasses.MISSING and f.name not in data]
  _check(not required, f"{where}: {cls.__name__} is missing {required}")
  return cls(**data)
