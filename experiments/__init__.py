"""Thin absl entry points: flags -> configs -> ntm_jax.train_seeds (common.main_for)."""
