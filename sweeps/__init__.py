"""W&B sweep definitions (one YAML per experiment) and a local sweep runner."""
