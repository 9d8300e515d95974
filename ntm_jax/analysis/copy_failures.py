"""Why one copy sequence fails: the first wrong output step, told apart by
what the heads did there.

A copy NTM writes input vector i to some row w_i and must read row w_i back
at output step i. The first output step with a wrong bit fails in one of
three ways, told apart from the heads' rows of peak weight:

- "overwritten": the write head's peak came back to w_i after writing
  vector i and before the read of it: a later input, the delimiter step or
  an earlier output step (the write head keeps moving while the model
  copies out), so the row may no longer hold vector i;
- "misplaced": the read head's peak is not on w_i (it skipped, stalled or
  jumped); `landed_on` then says which input's row it is on, and
  `landed_after_repeat` whether that input follows a copy of the vector that
  precedes i, the jump a lookup by content would make;
- "blurred": the read head is on w_i and nothing overwrote it, but the bits
  read back are wrong (weight spread over rows, or memory mixing).

Every function takes one sequence, unbatched, as `head_statistics.probe`
returns it for a batch.
"""
from typing import Optional

import numpy as np

CAUSES = ("overwritten", "misplaced", "blurred")
THIRDS = ("early", "middle", "late")


def step_bit_errors(logits, targets, length: int) -> np.ndarray:
  """[length] wrong bits at each output step of one copy sequence.

  logits, targets: [T, bits] with T >= 2 length + 1; output step i is time
  length + 1 + i (section 4.1's layout, `CopyTask.sample`).
  """
  output = slice(length + 1, 2 * length + 1)
  wrong = (np.asarray(logits)[output] > 0) != (np.asarray(targets)[output] > 0.5)
  return wrong.sum(axis=-1)


def first_failure(read_weights, write_weights, inputs, errors, length: int) -> Optional[dict]:
  """The first wrong output step of one sequence and its cause; None when no
  bit is wrong.

  Args:
    read_weights, write_weights: [T, N] the first read / write head's
      weightings (T >= 2 length + 1).
    inputs: [T, I] the sequence's inputs (the bits, then the delimiter).
    errors: [length] wrong bits per output step (`step_bit_errors`).
    length: the sequence's length.

  Returns:
    {"step": i, "cause": one of CAUSES, "read_offset": read row minus w_i on
    the ring, "landed_on": the input index whose row the read head is on
    (None if no input was written there), "landed_after_repeat": bool,
    "wrong_after": fraction of output steps from i on with a wrong bit}.
  """
  wrong = np.flatnonzero(np.asarray(errors) > 0)
  if wrong.size == 0:
    return None
  i = int(wrong[0])
  rows = np.asarray(read_weights).shape[-1]
  written = np.argmax(np.asarray(write_weights)[:length], axis=-1)  # [length] w_j
  read_row = int(np.argmax(np.asarray(read_weights)[length + 1 + i]))
  offset = (read_row - int(written[i]) + rows // 2) % rows - rows // 2
  # The row read at step i holds the last input written there.
  last_written = {int(row): j for j, row in enumerate(written)}
  landed = last_written.get(read_row)
  # Every write between vector i's and the read at time length + 1 + i.
  later = np.argmax(np.asarray(write_weights)[i + 1:length + 1 + i], axis=-1)
  if np.any(later == written[i]):
    cause = "overwritten"
  elif offset != 0:
    cause = "misplaced"
  else:
    cause = "blurred"
  bits = np.asarray(inputs)[:length, :-1] > 0.5
  after_repeat = bool(landed is not None and landed != i and i > 0 and landed > 0
                      and np.array_equal(bits[landed - 1], bits[i - 1]))
  return {"step": i, "cause": cause, "read_offset": int(offset), "landed_on": landed,
          "landed_after_repeat": after_repeat,
          "wrong_after": float(np.mean(np.asarray(errors)[i:] > 0))}


def seed_failures(probed: dict, length: int) -> dict:
  """One seed's failures over a batch from `head_statistics.probe`.

  Returns {"sequences": B, "failed": how many have a wrong bit,
  "bit_errors": mean wrong bits per sequence, "causes": {cause: count},
  "first_step_third": {"early", "middle", "late": count}, which third of
  the output the first wrong step falls in, "median_first_step",
  "median_abs_offset" (of the read head off its row) and
  "median_wrong_after" of the failed ones (None if none),
  "landed_after_repeat": count}.
  """
  records = []
  total = 0
  batch = probed["logits"].shape[0]
  for b in range(batch):
    errors = step_bit_errors(probed["logits"][b], probed["targets"][b], length)
    total += int(errors.sum())
    record = first_failure(probed["read_weights"][b][:, 0], probed["write_weights"][b][:, 0],
                           probed["inputs"][b], errors, length)
    if record is not None:
      records.append(record)

  def median(name):
    return float(np.median([r[name] for r in records])) if records else None

  return {"sequences": batch, "failed": len(records), "bit_errors": total / batch,
          "causes": {cause: sum(r["cause"] == cause for r in records) for cause in CAUSES},
          "first_step_third": {name: sum(min(3 * r["step"] // length, 2) == k for r in records)
                               for k, name in enumerate(THIRDS)},
          "median_first_step": median("step"),
          "median_abs_offset": (float(np.median([abs(r["read_offset"]) for r in records]))
                                if records else None),
          "landed_after_repeat": sum(r["landed_after_repeat"] for r in records),
          "median_wrong_after": median("wrong_after")}
