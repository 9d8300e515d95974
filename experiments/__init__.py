"""Thin absl entry points: flags -> ExperimentConfig -> ntm_jax.runs.engine.run."""
