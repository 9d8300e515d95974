"""The copy task (Graves et al. 2014, section 4.1) over many seeds at once.

    python -m experiments.copy --seeds 30
"""
from experiments import common

common.define_flags(max_length=20, test_lengths=(10, 20, 40, 60, 80, 100, 120),
                    steps=10_000, learning_rate=1e-3, batch_size=4)

if __name__ == "__main__":
  common.main_for("copy")
