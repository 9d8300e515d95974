"""The model protocol: what the engine, the tests and the analysis ask of a
model, so that adding a third model touches its own file and the registry `MODELS` in
`ntm_jax/models/api.py`, nothing else.

A model is a class (never instantiated) with:
  config_class          a frozen dataclass with a `kind: ClassVar[str]`, an
                        `input_size`, an `output_size` and a `remat` field
  cell_class            a flax module on ONE unbatched time step with
                        `initial_state(memory_size, rng=None)` and
                        `__call__(state, x) -> (state, (logits, trace))`
  cpu_seeds_per_group   seeds a CPU device runs at once (cache-sized groups)
  memory_rows(config)   N of its external memory, None if it has none (read
                        through `api.memory_size_for`, which decides what a
                        call that gives no N runs with)
  check_memory_size(config, N)   ValueError if N cannot work
  forward_flops(config, N) -> {term: FLOPs} of one forward time step (N from
                        `memory_size_for`: None without an external memory)
  dense_flops(config)   the dense layers' share of that
and optionally `sequence_logits(params, inputs, config)`: a faster path
over whole sequences that computes the same numbers as scanning the cell;
and, on the cell, `features(state, x) -> (state, (features, trace))` with
`readout(features) -> logits` (`__call__` composed of the two): `apply`
then runs the readout once over all time steps, after the time loop.
"""
from typing import Optional, Protocol


class Model(Protocol):
  config_class: type
  cell_class: type
  cpu_seeds_per_group: int

  @staticmethod
  def memory_rows(config) -> Optional[int]: ...

  @staticmethod
  def check_memory_size(config, memory_size: int) -> None: ...

  @staticmethod
  def forward_flops(config, memory_size: Optional[int]) -> dict: ...

  @staticmethod
  def dense_flops(config) -> int: ...
