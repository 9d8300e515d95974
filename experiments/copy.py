"""The copy task (Graves et al. 2014, section 4.1) over many seeds at once.

    python -m experiments.copy --seeds 30
"""
from experiments import common

# ReLU: 5 of 8 seeds copied length 100-120 perfectly against 3 of 8 with tanh
# (8-seed runs, 8,000 steps; WORKSPACE.md), as NTM-Lasagne also found.
common.define_flags(max_length=20, test_lengths=(10, 20, 40, 60, 80, 100, 120),
                    steps=10_000, learning_rate=1e-3, batch_size=4, activation="relu")

if __name__ == "__main__":
  common.main_for("copy")
