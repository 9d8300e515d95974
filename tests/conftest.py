"""Shared test setup: strict numpy rank promotion and a fast hypothesis profile."""
import jax
from hypothesis import HealthCheck, settings

# Implicit rank promotion ([N] + [H, N]) hides shape bugs; make it an error.
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "ntm",
    max_examples=25,
    deadline=None,  # the first example of a new shape pays for XLA compilation
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ntm")
