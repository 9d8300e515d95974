"""ntm_jax.analysis.copy_failures on hand-built head weightings, where the
cause of each failure is known by construction."""
import numpy as np

from ntm_jax.analysis import copy_failures

LENGTH, ROWS, BITS = 4, 8, 3


def one_hot(rows):
  out = np.zeros((len(rows), ROWS))
  out[np.arange(len(rows)), rows] = 1.0
  return out


def sequence(write_rows, read_rows, bits=None, later_write_row=5):
  """Weightings [T, N] and inputs [T, BITS + 1] of one sequence: inputs at
  steps 0..3, the delimiter at 4, outputs at 5..8; from the delimiter on the
  write head rests on `later_write_row`."""
  steps = 2 * LENGTH + 1
  write = np.zeros((steps, ROWS))
  write[:LENGTH] = one_hot(write_rows)
  write[LENGTH:] = one_hot([later_write_row] * (steps - LENGTH))
  read = np.zeros((steps, ROWS))
  read[LENGTH + 1:] = one_hot(read_rows)
  inputs = np.zeros((steps, BITS + 1))
  inputs[:LENGTH, :BITS] = np.eye(4, BITS) if bits is None else bits
  inputs[LENGTH, BITS] = 1
  return read, write, inputs


def test_step_bit_errors_counts_wrong_bits_at_each_output_step():
  targets = np.zeros((9, 2))
  targets[5:] = [[1, 0], [0, 1], [1, 1], [0, 0]]
  logits = np.where(targets > 0.5, 3.0, -3.0)
  logits[6] = [3.0, -3.0]     # both bits of output step 1 wrong
  logits[8, 0] = 1.0          # one bit of output step 3
  logits[2] = 5.0             # the input phase is not scored
  assert copy_failures.step_bit_errors(logits, targets, LENGTH).tolist() == [0, 2, 0, 1]


def test_a_sequence_without_errors_has_no_failure():
  read, write, inputs = sequence([0, 1, 2, 3], [0, 1, 2, 3])
  assert copy_failures.first_failure(read, write, inputs, [0, 0, 0, 0], LENGTH) is None


def test_a_row_written_twice_is_overwritten():
  read, write, inputs = sequence([0, 1, 1, 2], [0, 1, 1, 2])  # input 1's row reused by 2
  record = copy_failures.first_failure(read, write, inputs, [0, 3, 0, 0], LENGTH)
  assert record["cause"] == "overwritten" and record["step"] == 1
  assert record["read_offset"] == 0 and record["landed_on"] == 2
  assert record["wrong_after"] == 1 / 3


def test_a_row_the_write_head_visits_while_copying_out_is_overwritten():
  # The last input's row (3) is written again at the delimiter, before it
  # is read at output step 3; the earlier rows are not.
  read, write, inputs = sequence([0, 1, 2, 3], [0, 1, 2, 3], later_write_row=3)
  record = copy_failures.first_failure(read, write, inputs, [0, 0, 0, 2], LENGTH)
  assert record["cause"] == "overwritten" and record["step"] == 3
  record = copy_failures.first_failure(read, write, inputs, [0, 0, 1, 2], LENGTH)
  assert record["cause"] == "blurred" and record["step"] == 2


def test_a_read_head_one_row_ahead_is_misplaced_and_says_where_it_landed():
  read, write, inputs = sequence([0, 1, 2, 3], [0, 1, 3, 7])
  record = copy_failures.first_failure(read, write, inputs, [0, 0, 2, 1], LENGTH)
  assert record["cause"] == "misplaced" and record["step"] == 2
  assert record["read_offset"] == 1 and record["landed_on"] == 3
  assert record["wrong_after"] == 1.0
  assert not record["landed_after_repeat"]  # inputs 1 and 2 differ


def test_a_jump_to_the_vector_after_a_repeat_is_flagged():
  bits = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 0, 1]])  # input 2 repeats input 0
  read, write, inputs = sequence([0, 1, 2, 3], [0, 3, 2, 3], bits=bits)
  # Output step 1 should read input 1 (after input 0); the head went to
  # input 3, which follows input 2, a copy of input 0.
  record = copy_failures.first_failure(read, write, inputs, [0, 1, 0, 0], LENGTH)
  assert record["cause"] == "misplaced" and record["landed_on"] == 3
  assert record["landed_after_repeat"]


def test_offsets_wrap_around_the_ring_of_rows():
  read, write, inputs = sequence([7, 0, 1, 2], [6, 0, 1, 2])
  record = copy_failures.first_failure(read, write, inputs, [1, 0, 0, 0], LENGTH)
  assert record["read_offset"] == -1 and record["landed_on"] is None


def test_the_right_row_read_wrongly_is_blurred():
  read, write, inputs = sequence([0, 1, 2, 3], [0, 1, 2, 3])
  record = copy_failures.first_failure(read, write, inputs, [0, 0, 0, 1], LENGTH)
  assert record["cause"] == "blurred" and record["step"] == 3


def test_seed_failures_counts_a_batch():
  sequences = [sequence([0, 1, 2, 3], [0, 1, 2, 3]), sequence([0, 1, 1, 2], [0, 1, 1, 2]),
               sequence([0, 1, 2, 3], [0, 1, 3, 7])]
  targets = np.zeros((3, 9, 2))
  logits = np.full((3, 9, 2), -1.0)
  logits[1, 6:] = 1.0               # output steps 1-3 of sequence 1: 2 bits each
  logits[2, 7:, 0] = 1.0            # output steps 2-3 of sequence 2: 1 bit each
  probed = {"logits": logits, "targets": targets,
            "read_weights": np.stack([s[0] for s in sequences])[:, :, None],
            "write_weights": np.stack([s[1] for s in sequences])[:, :, None],
            "inputs": np.stack([s[2] for s in sequences])}
  out = copy_failures.seed_failures(probed, LENGTH)
  assert out["sequences"] == 3 and out["failed"] == 2
  assert out["bit_errors"] == (6 + 2) / 3
  assert out["causes"] == {"overwritten": 1, "misplaced": 1, "blurred": 0}
  assert out["median_first_step"] == 1.5
  # Length 4: steps 0-1 are the first third (3 i // 4 = 0), 2 the second.
  assert out["first_step_third"] == {"early": 1, "middle": 1, "late": 0}
  assert out["median_abs_offset"] == 0.5  # offsets 0 (overwritten) and +1


# python -m experiments.copy_failures ---------------------------------------------


def test_the_command_counts_the_sequences_a_seed_gets_wrong(tiny_run_dir):
  import jax

  import ntm_jax
  from experiments import copy_failures as command
  from ntm_jax.runs import checkpoints
  config, states = checkpoints.load_run(tiny_run_dir)
  records = command.report(tiny_run_dir, length=6, sequences=8, memory=16, batch=4,
                           log=lambda line: None)
  assert [r["seed_index"] for r in records] == list(range(config.train.seeds))
  task = config.make_task()
  for record in records:
    params = checkpoints.seed_params(states, record["seed_index"])
    failed, errors = 0, 0
    for start in (0, 4):  # the command's sequences: PRNGKey(start), folded with the length
      inputs, targets, mask = task.sample(jax.random.fold_in(jax.random.PRNGKey(start), 6),
                                          4, 6, 6)
      logits, _ = ntm_jax.apply(params, inputs, config.model, memory_size=16)
      wrong = ((np.asarray(logits) > 0) != (np.asarray(targets) > 0.5)) * np.asarray(mask)[..., None]
      failed += int((wrong.sum(axis=(1, 2)) > 0).sum())
      errors += float(wrong.sum())
    assert record["failed"] == failed
    assert np.isclose(record["bit_errors"], errors / 8)
    assert sum(record["causes"].values()) == failed


def test_the_command_refuses_bad_settings_in_one_line(tiny_run_dir, tmp_path):
  import pytest

  from experiments import copy_failures as command
  for args, message in (((str(tmp_path), 120, 8, 128, 8), "is not a run directory"),
                        ((tiny_run_dir, 120, 8, 64, 8), "smaller than --length"),
                        ((tiny_run_dir, 120, 10, 128, 4), "multiple of --batch")):
    with pytest.raises(ValueError, match=message) as error:
      command._check(*args)
    assert "\n" not in str(error.value)
