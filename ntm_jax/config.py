"""Static hyperparameters of the models, as frozen dataclasses."""
import dataclasses

CONTROLLERS = ("ff", "lstm")
ACTIVATIONS = ("tanh", "relu", "sigmoid")
MEMORY_INITS = ("constant", "learned", "random")
HEAD_ACTIVATIONS = ("tanh", "linear")


def _check(condition: bool, message: str) -> None:
  if not condition:
    raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class NTMConfig:
  """A Neural Turing Machine. Defaults are the paper's copy-task NTM.

  Graves et al. 2014, Table 1: a feed-forward controller of 100 units, one
  read and one write head, memory 128 x 20, shifts -1, 0, +1.
  """
  input_size: int
  output_size: int
  controller: str = "ff"            # "ff" or "lstm"
  controller_size: int = 100        # units per controller layer
  controller_layers: int = 1
  controller_activation: str = "tanh"  # feed-forward only
  memory_rows: int = 128            # N
  memory_width: int = 20            # M
  read_heads: int = 1
  write_heads: int = 1
  shift_range: int = 3              # number of allowed shifts, odd: 2k + 1
  forward_only_shift: bool = False  # allow only shifts 0..+k
  # A small constant memory init converged about 2x faster than learned or
  # random init in Collier & Beel 2018. Unwritten rows then have norms far
  # below addressing.NORM_EPS's floor, so content addressing sees them as
  # near-zero rows (cosine ~0), never as matches.
  memory_init: str = "constant"     # "constant", "learned" or "random"
  memory_init_value: float = 1e-6
  key_activation: str = "tanh"      # "tanh" or "linear"
  add_activation: str = "tanh"      # "tanh" or "linear"
  # Collier & Beel 2018 clip the controller's head outputs to +-20.
  head_clip: float = 20.0
  # Recompute each step in the backward pass instead of storing it
  # (jax.checkpoint): far less memory traffic, faster on CPU.
  remat: bool = True

  def __post_init__(self):
    _check(self.input_size >= 1, f"input_size must be >= 1, got {self.input_size}")
    _check(self.output_size >= 1, f"output_size must be >= 1, got {self.output_size}")
    _check(self.controller in CONTROLLERS,
           f"unknown controller {self.controller!r}; choose one of {CONTROLLERS}")
    _check(self.controller_activation in ACTIVATIONS,
           f"unknown controller_activation {self.controller_activation!r}; "
           f"choose one of {ACTIVATIONS}")
    _check(self.controller_size >= 1, f"controller_size must be >= 1, got {self.controller_size}")
    _check(self.controller_layers >= 1, f"controller_layers must be >= 1, got {self.controller_layers}")
    _check(self.memory_rows >= 1, f"memory_rows must be >= 1, got {self.memory_rows}")
    _check(self.memory_width >= 1, f"memory_width must be >= 1, got {self.memory_width}")
    _check(self.read_heads >= 1, f"read_heads must be >= 1, got {self.read_heads}")
    _check(self.write_heads >= 1, f"write_heads must be >= 1, got {self.write_heads}")
    _check(self.shift_range >= 1 and self.shift_range % 2 == 1,
           f"shift_range must be odd (2k+1 shifts -k..k), got {self.shift_range}")
    _check(self.shift_range <= self.memory_rows,
           f"shift_range {self.shift_range} exceeds memory_rows {self.memory_rows}")
    _check(self.memory_init in MEMORY_INITS,
           f"unknown memory_init {self.memory_init!r}; choose one of {MEMORY_INITS}")
    _check(self.memory_init_value != 0.0 or self.memory_init != "constant",
           "memory_init_value must be non-zero: an all-zero memory gives every "
           "row the same zero similarity and zero gradient")
    _check(self.key_activation in HEAD_ACTIVATIONS,
           f"unknown key_activation {self.key_activation!r}; choose one of {HEAD_ACTIVATIONS}")
    _check(self.add_activation in HEAD_ACTIVATIONS,
           f"unknown add_activation {self.add_activation!r}; choose one of {HEAD_ACTIVATIONS}")
    _check(self.head_clip > 0, f"head_clip must be > 0, got {self.head_clip}")


@dataclasses.dataclass(frozen=True)
class LSTMConfig:
  """The paper's baseline: a stack of LSTM layers and a linear read-out."""
  input_size: int
  output_size: int
  size: int = 256
  layers: int = 3
  # remat=True keeps only each layer's inputs for the backward pass and
  # recomputes the rest (`lstm_sequence.apply_lstm`). Unlike the NTM's
  # memory, an LSTM's per-step state is small, so storing it is the default:
  # 8 seeds of the 3 x 256 baseline trained 9-12% faster without remat (on
  # the step-by-step path of the time) on associative recall, repeat copy
  # and priority sort.
  remat: bool = False

  def __post_init__(self):
    _check(self.input_size >= 1, f"input_size must be >= 1, got {self.input_size}")
    _check(self.output_size >= 1, f"output_size must be >= 1, got {self.output_size}")
    _check(self.size >= 1, f"size must be >= 1, got {self.size}")
    _check(self.layers >= 1, f"layers must be >= 1, got {self.layers}")
