"""Associative recall (Graves et al. 2014, section 4.3) over many seeds at once.

    python -m experiments.associative_recall --seeds 8
    python -m experiments.associative_recall --seeds 8 --model lstm

Trains on 2-6 items of three 6-bit vectors, tests up to 20 items. The
default NTM has an LSTM controller of 100 units and one read and one write
head: a feed-forward controller sees one of the query's three vectors at a
time and has nowhere but memory to hold the rest, which is why the paper
gave its feed-forward NTM 4 heads (`--controller ff --read_heads 4
--write_heads 4 --controller_size 256` is the paper's).
"""
from experiments import common, help_flags

common.define_flags(min_length=2, max_length=6, test_lengths=(3, 6, 9, 12, 15, 20),
                    steps=6_000, learning_rate=1e-3, batch_size=4, controller="lstm",
                    seeds=8)
help_flags.list_shared_flags()  # --help lists every flag, exits 0

if __name__ == "__main__":
  common.main_for("associative_recall")
