"""Every plot writes a non-blank PNG of the documented pixel size."""
import matplotlib.image
import numpy as np
import pytest

import ntm_jax.analysis.plots as plots

T, N, M = 9, 12, 4


def _size(path):
  image = matplotlib.image.imread(path)
  assert image.size and np.ptp(image) > 0  # not blank
  return image.shape[1], image.shape[0]  # width, height


def _summary():
  seeds = [{"seed": i, "converged_step": c, "diverged": d,
            "bit_errors_by_length": {"10": e, "20": None if e is None else 2 * e}}
           for i, (c, d, e) in enumerate([(100, False, 0.0), (None, False, 3.0),
                                          (None, True, None), (300, False, 0.5)])]
  return {"task": "copy", "model": "ntm", "seeds": seeds,
          "aggregate": {"median_bit_errors_by_length": {"10": 0.5, "20": 1.0},
                        "test_memory_size": 128}}


def test_used_rows_is_the_smallest_circular_span_any_head_touched():
  w = np.zeros((T, 2, N))
  w[2, 0, 3] = 1.0
  w[5, 1, 7] = 0.5
  np.testing.assert_array_equal(plots.used_rows(w), np.arange(3, 8))
  wrapped = np.zeros((T, 1, N))
  wrapped[:, 0, [N - 2, N - 1, 0, 1]] = 1.0  # a head that wrapped past the last row
  np.testing.assert_array_equal(plots.used_rows(wrapped), [N - 2, N - 1, 0, 1])
  np.testing.assert_array_equal(plots.used_rows(np.zeros((T, 1, N))), np.arange(N))
  np.testing.assert_array_equal(plots.used_rows(np.ones((T, 1, N))), np.arange(N))


@pytest.mark.parametrize("rows", ["used", "all"])
def test_head_weightings_png(tmp_path, rows):
  rng = np.random.default_rng(0)
  write = np.eye(N)[(np.arange(T) - 2) % N][:, None, :]  # wraps from row 10 to row 6
  read = np.concatenate([np.roll(write, 1, axis=-1), np.roll(write, 2, axis=-1)], axis=1)
  path = plots.head_weightings(rng.random((T, 5)), rng.random((T, 4)), rng.random((T, 4)),
                               read, write, str(tmp_path / "sub" / "h.png"), rows=rows,
                               title="test")
  assert path == str(tmp_path / "sub" / "h.png")
  assert _size(path) == (1200, 900)
  with pytest.raises(ValueError, match="rows"):
    plots.head_weightings(rng.random((T, 5)), rng.random((T, 4)), rng.random((T, 4)),
                          read, write, str(tmp_path / "x.png"), rows="some")


def test_memory_matrix_png(tmp_path):
  memory = np.random.default_rng(1).normal(size=(T, N, M))
  expected = (1200, 500)
  assert _size(plots.memory_matrix(memory, [0, 4, 8], str(tmp_path / "m.png"))) == expected
  assert _size(plots.memory_matrix(memory, [2, -1], str(tmp_path / "r.png"),
                                   rows=[10, 11, 0, 1])) == expected
  assert _size(plots.memory_matrix(memory[0], [0], str(tmp_path / "m1.png"))) == expected


def test_learning_curves_png(tmp_path):
  rows = [{"step": s, "loss": [1.0] * 4} for s in (1, 2)]
  rows += [{"step": s, "eval_loss": [10.0 / s, 5.0, None, 0.0]} for s in (3, 4, 5)]
  path = plots.learning_curves(rows, _summary(), str(tmp_path / "l.png"))
  assert _size(path) == (1000, 600)
  assert _size(plots.learning_curves(rows, _summary(), str(tmp_path / "t.png"),
                                     key="loss")) == (1000, 600)


@pytest.mark.parametrize("converged", [True, False])
def test_steps_to_converge_png(tmp_path, converged):
  summary = _summary()
  if not converged:
    for seed in summary["seeds"]:
      seed["converged_step"] = None
  path = plots.steps_to_converge(summary, str(tmp_path / "s.png"), total_steps=500)
  assert _size(path) == (1200, 500)


def test_generalisation_png_with_two_models(tmp_path):
  path = plots.generalisation({"NTM": _summary(), "LSTM": _summary()}, str(tmp_path / "g.png"))
  assert _size(path) == (1000, 600)
