"""Priority sort (Graves et al. 2014, section 4.5) over many seeds at once.

    python -m experiments.priority_sort --seeds 8
    python -m experiments.priority_sort --seeds 8 --model lstm

20 vectors with priorities in [-1, 1] in, the 16 highest out in order. The
NTM has the paper's 8 read and 8 write heads; its controller is
feed-forward, 512 units as in the paper. Tests keep the 16/20 ratio at
other input counts (e.g. 30 in, 24 out).
"""
from experiments import common, help_flags

common.define_flags(min_length=20, max_length=20, test_lengths=(10, 15, 20, 25, 30),
                    steps=6_000, learning_rate=1e-3, batch_size=4, activation="relu",
                    controller_size=512, read_heads=8, write_heads=8,
                    converge_threshold=1.0, seeds=8)
help_flags.list_shared_flags()  # --help lists every flag, exits 0

if __name__ == "__main__":
  common.main_for("priority_sort")
