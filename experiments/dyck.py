"""Balanced parentheses (Dyck words) as classification, many seeds at once.

    python -m experiments.dyck --seeds 8
    python -m experiments.dyck --seeds 8 --model lstm

Trains on words of 1-40 characters, tests up to 200. "Bit errors per
sequence" is here the fraction of words misclassified, so the default
convergence threshold 0.01 means 99% accuracy. The NTM has an LSTM
controller (it carries "already unbalanced" while the head tracks depth).
"""
from experiments import common, help_flags

common.define_flags(max_length=40, test_lengths=(10, 20, 40, 60, 80, 100, 150, 200),
                    steps=4_000, learning_rate=1e-3, batch_size=8, controller="lstm",
                    converge_threshold=0.01, seeds=8)
help_flags.list_shared_flags()  # --help lists every flag, exits 0

if __name__ == "__main__":
  common.main_for("dyck")
