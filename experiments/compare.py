"""Runs side by side at equal training sequences (e.g. NTM vs LSTM).

    python -m experiments.compare RUN_DIR RUN_DIR [...]
"""
import sys

from absl import app


def main(argv):
  import ntm_jax.runs.compare as compare
  try:
    print(compare.format_comparison(compare.at_equal_sequences(argv[1:])))
  except (ValueError, OSError) as error:
    sys.exit(f"error: {error}")


if __name__ == "__main__":
  from experiments.common import parse_flags
  app.run(main, flags_parser=parse_flags)
