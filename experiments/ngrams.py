"""Dynamic N-grams (Graves et al. 2014, section 4.4) over many seeds at once.

    python -m experiments.ngrams --seeds 8
    python -m experiments.ngrams --seeds 8 --model lstm

200-bit sequences from a fresh 6-gram table each; the summary puts the
model's cost per sequence next to the optimal Bayesian predictor's on the
same sequences. A seed converges when its cost is within --converge_threshold
(relative, default 5%) of the optimum.
"""
from experiments import common, help_flags

common.define_flags(min_length=200, max_length=200, test_lengths=(200,), steps=4_000,
                    learning_rate=3e-4, batch_size=4, controller="lstm",
                    converge_threshold=0.05, seeds=8)
help_flags.list_shared_flags()  # --help lists every flag, exits 0

if __name__ == "__main__":
  common.main_for("ngrams")
