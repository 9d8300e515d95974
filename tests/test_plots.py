"""Every plot writes a PNG of the documented pixel size, with no display."""
import matplotlib.image
import numpy as np

from ntm_jax import plots

T, N, M = 9, 12, 4


def _size(path):
  image = matplotlib.image.imread(path)
  return image.shape[1], image.shape[0]  # width, height


def _summary():
  seeds = [{"seed": i, "converged_step": c, "diverged": d,
            "bit_errors_by_length": {"10": e, "20": None if e is None else 2 * e}}
           for i, (c, d, e) in enumerate([(100, False, 0.0), (None, False, 3.0),
                                          (None, True, None), (300, False, 0.5)])]
  return {"task": "copy", "model": "ntm", "seeds": seeds,
          "aggregate": {"median_bit_errors_by_length": {"10": 0.5, "20": 1.0}}}


def test_used_rows_is_the_span_any_head_touched():
  w = np.zeros((T, 2, N))
  w[2, 0, 3] = 1.0
  w[5, 1, 7] = 0.5
  assert plots.used_rows(w) == slice(3, 8)
  assert plots.used_rows(np.zeros((T, 1, N))) == slice(0, N)


def test_head_weightings_png(tmp_path):
  rng = np.random.default_rng(0)
  weights = np.eye(N)[np.arange(T) % N][:, None, :]
  path = plots.head_weightings(rng.random((T, 5)), rng.random((T, 4)), rng.random((T, 4)),
                               weights, np.roll(weights, 1, axis=-1), str(tmp_path / "h.png"))
  assert _size(path) == (1200, 900)


def test_memory_matrix_png(tmp_path):
  memory = np.random.default_rng(1).normal(size=(T, N, M))
  assert _size(plots.memory_matrix(memory, [0, 4, 8], str(tmp_path / "m.png"))) == (1200, 500)
  assert _size(plots.memory_matrix(memory[0], [0], str(tmp_path / "m1.png"))) == (1200, 500)


def test_learning_curves_png(tmp_path):
  rows = [{"step": s, "eval_loss": [10.0 / s, 5.0, None, 1.0 / s]} for s in (1, 2, 3)]
  assert _size(plots.learning_curves(rows, _summary(), str(tmp_path / "l.png"))) == (1000, 600)


def test_steps_to_converge_png(tmp_path):
  assert _size(plots.steps_to_converge(_summary(), str(tmp_path / "s.png"))) == (1200, 500)


def test_generalisation_png_with_two_models(tmp_path):
  path = plots.generalisation({"NTM": _summary(), "LSTM": _summary()}, str(tmp_path / "g.png"))
  assert _size(path) == (1000, 600)
