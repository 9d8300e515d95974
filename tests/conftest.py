"""Shared test setup: strict numpy rank promotion and a fast hypothesis profile."""
import os

import jax
from hypothesis import HealthCheck, settings

# Implicit rank promotion ([N] + [H, N]) hides shape bugs; make it an error.
jax.config.update("jax_numpy_rank_promotion", "raise")
# The suite runs many tiny programs once each: XLA compile time dominates and
# its optimisation passes buy nothing here (about 1.6x faster end to end).
# The math is unchanged (no fast-math either way); only scheduling/fusion differ.
jax.config.update("jax_disable_most_optimizations", True)
# The same for the experiments the tests start as subprocesses.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "true")

settings.register_profile(
    "ntm",
    max_examples=25,
    deadline=None,  # the first example of a new shape pays for XLA compilation
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ntm")
