"""The copy task (Graves et al. 2014, section 4.1).

Input: `length` random 8-bit vectors, then a delimiter on its own channel,
then silence while the model emits the copy. Loss counts only on the output
phase. Every batch is padded to `max_length`, so one compiled program serves
every length: a sequence of length l occupies 2l + 1 of the 2 * max_length + 1
steps, and the mask marks its l output steps.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

# What each of `CopyTask.strategy_statistics`' numbers means. In a sequence
# of length l (steps 0..2l): the input phase is steps 0..l-1 (vector j is
# written at step j), the delimiter is step l, the output phase is steps
# l+1..2l (output step l+1+j replays vector j). "Row" is a head's row of
# peak weight; offsets are signed and circular. The first read and write
# heads count where a statistic compares rows. A seed may write downwards
# (-1 row per step): "in the write direction" means in its own direction.
STRATEGY_STATISTICS = {
    "delimiter_offset": "read row at the delimiter minus the row of the first write "
                        "(0: parked on the start, ready to read one step ahead)",
    "read_alignment": "fraction of vectors whose write row the read head visits when it "
                      "must: at step l+j, one step ahead (the controller passes the read on), "
                      "or l+1+j, whichever suits the sequence",
    "read_drift_input": "read head's mean |row move| per step during the input phase "
                        "(0: parked, 1: follows the writes)",
    "read_peak_input": "read head's mean peak weight during the input phase",
    "read_gate_at_start": "read gate g over the delimiter and first two output steps "
                          "(1: content addressing, 0: location)",
    "read_key_strength_at_start": "read key strength beta over the same steps",
    "read_gate_later_output": "read gate g over the rest of the output phase",
    "read_peak_output": "read head's mean peak weight during the output phase",
    "read_unit_steps_output": "fraction of output steps whose read row moved by exactly one "
                              "row in the write direction",
    "write_direction": "sign of the write head's median move during the input phase "
                       "(+1 upwards, -1 downwards)",
    "write_unit_steps_input": "fraction of input steps whose write row moved by exactly one "
                              "row in the write direction (1: pure location addressing)",
    "write_peak_input": "write head's mean peak weight during the input phase (1: one-hot)",
    "write_entropy_input": "write weighting's mean entropy in bits during the input phase "
                           "(0: one-hot, log2 N: uniform)",
    "memory_touched": "fraction of memory rows the write head gave > 0.1 at some step "
                      "(any phase)",
}


@dataclasses.dataclass(frozen=True)
class CopyTask:
  """Copy `length` random `bits`-bit vectors after a delimiter."""
  bits: int = 8
  name: str = "copy"

  @property
  def input_size(self) -> int:
    return self.bits + 1  # data channels plus the delimiter channel

  @property
  def output_size(self) -> int:
    return self.bits

  min_length = 1

  def memory_needed(self, length: int) -> int:
    """Memory rows a sequence of `length` needs: one per vector."""
    return length

  def sequence_steps(self, max_length: int) -> int:
    """T, the padded number of time steps for lengths up to max_length."""
    return 2 * max_length + 1

  def sample(self, rng: jax.Array, batch_size: int, length, max_length: int):
    """A batch of copy sequences.

    Args:
      rng: PRNG key.
      batch_size: B (static).
      length: [] or [B] int, 1 <= length <= max_length; may be traced.
      max_length: static padding length.

    Returns:
      inputs [B, T, bits + 1], targets [B, T, bits], mask [B, T] (float,
      1 on the output phase), with T = 2 * max_length + 1.
    """
    steps = self.sequence_steps(max_length)
    lengths = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (batch_size,))
    data = jax.random.bernoulli(rng, 0.5, (batch_size, max_length, self.bits))
    data = data.astype(jnp.float32)
    time = jnp.arange(steps)[None, :]          # [1, T]
    lengths = lengths[:, None]                 # [B, 1]
    read_in = time < lengths                   # [B, T]
    delimiter = time == lengths
    output_phase = (time > lengths) & (time <= 2 * lengths)
    padded = jnp.pad(data, ((0, 0), (0, steps - max_length), (0, 0)))
    inputs = jnp.concatenate(
        [padded * read_in[..., None], delimiter[..., None]], axis=-1)
    # Output step t replays input step t - l - 1.
    source = jnp.clip(time - lengths - 1, 0, max_length - 1)
    targets = jnp.take_along_axis(data, jnp.broadcast_to(
        source[..., None], (batch_size, steps, self.bits)), axis=1)
    targets = targets * output_phase[..., None]
    return inputs, targets, output_phase.astype(jnp.float32)

  def strategy_statistics(self, params, model_config, train_length: int = 20,
                          long_length: int = 120, memory_size: int = 128,
                          sequences: int = 8, rng=None) -> dict:
    """How one seed copies: `STRATEGY_STATISTICS`' numbers, each the mean
    over `sequences` fixed sequences, at two lengths.

    Args:
      params, model_config: one seed's model (no seed axis).
      train_length, long_length: the lengths probed; keys end in "_train"
        and f"_L{long_length}".
      memory_size: memory rows N for both (raised to what long_length needs).
      sequences, rng: see `ntm_jax.analysis.head_statistics.probe`.

    Returns:
      {name + suffix: float} (NaN where a phase is too short to measure);
      {} for a model without heads (the LSTM baseline).
    """
    import ntm_jax.analysis.head_statistics as head_statistics
    memory_size = max(memory_size, self.memory_needed(long_length))
    out = {}
    for length, suffix in ((train_length, "_train"), (long_length, f"_L{long_length}")):
      # Both lengths padded to the longer: one compiled program serves them.
      probed = head_statistics.probe(params, model_config, self, length, memory_size,
                                     sequences, rng, pad_to=max(train_length, long_length))
      if "read_weights" not in probed:
        return {}
      per_sequence = [sequence_strategy_statistics(
          {name: value[b] for name, value in probed.items()}, length)
          for b in range(sequences)]
      for name in STRATEGY_STATISTICS:
        out[name + suffix] = float(np.mean([stats[name] for stats in per_sequence]))
    return out


def sequence_strategy_statistics(probed: dict, length: int) -> dict:
  """`STRATEGY_STATISTICS` of one copy sequence of `length` from
  `head_statistics.probe`'s arrays of one sequence (read_weights [T, R, N],
  write_weights [T, W, N], read_gate [T, R], ...; T = 2 length + 1)."""
  import ntm_jax.analysis.head_statistics as hs
  read, write = probed["read_weights"], probed["write_weights"]
  rows = read.shape[-1]
  read_row, write_row = hs.argmax_rows(read)[:, 0], hs.argmax_rows(write)[:, 0]
  inputs, output = slice(0, length), slice(length + 1, 2 * length + 1)
  # The steps in which the read head has to get to the first vector's row.
  start = (length, length + 3)
  write_moves = hs.moves(write[inputs])[:, 0]
  direction = 1 if write_moves.size == 0 or np.median(write_moves) >= 0 else -1
  return {
      "delimiter_offset": float(hs.circular_offset(read_row[length], write_row[0], rows)),
      "read_alignment": max(hs.peak_agreement(read[length:2 * length], write[inputs]),
                            hs.peak_agreement(read[output], write[inputs])),
      "read_drift_input": hs.drift(read[inputs]),
      "read_peak_input": hs.peak(read[inputs]),
      "read_gate_at_start": hs.window_mean(probed["read_gate"], *start),
      "read_key_strength_at_start": hs.window_mean(probed["read_key_strength"], *start),
      "read_gate_later_output": hs.window_mean(probed["read_gate"], start[1],
                                               2 * length + 1),
      "read_peak_output": hs.peak(read[output]),
      "read_unit_steps_output": hs.shift_fraction(read[output], direction),
      "write_direction": float(direction),
      "write_unit_steps_input": hs.shift_fraction(write[inputs], direction),
      "write_peak_input": hs.peak(write[inputs]),
      "write_entropy_input": hs.entropy_bits(write[inputs]),
      "memory_touched": hs.rows_touched(write),
  }
