"""Repeat copy (Graves et al. 2014, section 4.2) over many seeds at once.

    python -m experiments.repeat_copy --seeds 8
    python -m experiments.repeat_copy --seeds 8 --encoding unary
    python -m experiments.repeat_copy --seeds 8 --model lstm

Trains on sequences of 1-10 vectors repeated 1-10 times (the paper's
ranges); tests longer sequences (--test_lengths) and, as extra tables, more
repeats (--test_repeats).
"""
from absl import flags

from experiments import common, help_flags

common.define_flags(max_length=10, test_lengths=(5, 10, 15, 20), steps=6_000,
                   learning_rate=1e-3, batch_size=4, activation="relu", seeds=8)
flags.DEFINE_enum("encoding", "scalar", ["scalar", "unary"],
                  "Repeat count: scalar (the paper's, normalised) or unary (a flag per repeat).")
flags.DEFINE_integer("min_repeats", 1, "Fewest repeats while training.")
flags.DEFINE_integer("max_repeats", 10, "Most repeats while training.")
flags.DEFINE_list("test_repeats", ["15", "20"], "Extra tests at these repeat counts.")


def task_options(f):
  try:
    test_repeats = tuple(int(r) for r in f.test_repeats)
  except ValueError:
    raise ValueError(f"test_repeats must be integers, got {f.test_repeats}") from None
  return {"encoding": f.encoding, "min_repeats": f.min_repeats,
          "max_repeats": f.max_repeats, "test_repeats": test_repeats}

help_flags.list_shared_flags()  # --help lists every flag, exits 0

if __name__ == "__main__":
  common.main_for("repeat_copy", task_options)
