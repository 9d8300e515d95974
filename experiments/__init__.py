"""Thin absl entry points: flags -> ExperimentConfig -> ntm_jax.experiment.run."""
