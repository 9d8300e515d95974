"""Pictures of what an NTM learned and how its seeds trained (matplotlib, Agg).

Every function writes one PNG and returns its path. Figures are drawn at
DPI dots per inch on a fixed size in inches, so the pixel size is
(width * DPI, height * DPI) as each docstring says.
"""
import os
from typing import Dict, Sequence

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 100


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=DPI)
  plt.close(fig)
  return path


def used_rows(weights: np.ndarray, threshold: float = 0.01) -> slice:
  """The contiguous range of memory rows any head weighted above threshold.

  weights: [T, H, N] (any number of heads)."""
  active = np.nonzero(np.asarray(weights).max(axis=(0, 1)) > threshold)[0]
  if active.size == 0:
    return slice(0, np.asarray(weights).shape[-1])
  return slice(int(active.min()), int(active.max()) + 1)


def head_weightings(inputs, targets, outputs, read_weights, write_weights, path: str,
                    rows: str = "used") -> str:
  """Figure 6 of the paper: inputs and outputs above, head weightings below.

  Args:
    inputs: [T, I]; targets, outputs: [T, O] (outputs as probabilities).
    read_weights: [T, R, N]; write_weights: [T, W, N].
    rows: "used" (rows any head touched) or "all".

  Returns:
    path of a 1200 x 900 pixel PNG.
  """
  read_weights, write_weights = np.asarray(read_weights), np.asarray(write_weights)
  span = (used_rows(np.concatenate([read_weights, write_weights], axis=1))
          if rows == "used" else slice(0, read_weights.shape[-1]))
  heads = ([(f"write head {h}", write_weights[:, h]) for h in range(write_weights.shape[1])]
           + [(f"read head {h}", read_weights[:, h]) for h in range(read_weights.shape[1])])
  panels = [("inputs", np.asarray(inputs)), ("targets", np.asarray(targets)),
            ("outputs", np.asarray(outputs))]
  fig, axes = plt.subplots(len(panels) + len(heads), 1, figsize=(12, 9),
                           sharex=True, squeeze=False)
  for ax, (title, values) in zip(axes[:, 0], panels):
    ax.imshow(values.T, aspect="auto", cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_ylabel(title)
  for ax, (title, values) in zip(axes[len(panels):, 0], heads):
    ax.imshow(values[:, span].T, aspect="auto", cmap="viridis", vmin=0, vmax=1,
              interpolation="nearest", extent=(-0.5, values.shape[0] - 0.5,
                                               span.stop - 0.5, span.start - 0.5))
    ax.set_ylabel(f"{title}\nrow")
  axes[-1, 0].set_xlabel("time step")
  fig.tight_layout()
  return _save(fig, path)


def memory_matrix(memory, steps: Sequence[int], path: str) -> str:
  """The memory at chosen steps. memory: [T, N, M] or [N, M]. 1200 x 500 px."""
  memory = np.asarray(memory)
  if memory.ndim == 2:
    memory, steps = memory[None], [0]
  fig, axes = plt.subplots(1, len(steps), figsize=(12, 5), squeeze=False)
  for ax, step in zip(axes[0], steps):
    image = ax.imshow(memory[step], aspect="auto", cmap="RdBu_r", interpolation="nearest",
                      vmin=-1, vmax=1)
    ax.set_title(f"step {step}")
    ax.set_xlabel("column")
  axes[0, 0].set_ylabel("memory row")
  fig.colorbar(image, ax=axes[0].tolist())
  return _save(fig, path)


def learning_curves(rows: Sequence[dict], summary: dict, path: str,
                    key: str = "eval_loss") -> str:
  """Every seed faint, the median bold; converged, unconverged and diverged
  seeds in different colours. rows: metrics.jsonl lines. 1000 x 600 px."""
  rows = [r for r in rows if key in r]
  steps = np.array([r["step"] for r in rows])
  values = np.array([[np.nan if v is None else v for v in r[key]] for r in rows], float)
  fig, ax = plt.subplots(figsize=(10, 6))
  colours = {"converged": "tab:blue", "not converged": "tab:orange", "diverged": "tab:red"}
  seen = set()
  for i, seed in enumerate(summary["seeds"]):
    kind = ("diverged" if seed["diverged"] else
            "converged" if seed["converged_step"] is not None else "not converged")
    ax.plot(steps, np.clip(values[:, i], 1e-3, None), color=colours[kind], alpha=0.3,
            linewidth=0.8, label=None if kind in seen else f"{kind} seed")
    seen.add(kind)
  ax.plot(steps, np.clip(np.nanmedian(values, axis=1), 1e-3, None), color="black",
          linewidth=2.5, label="median")
  ax.set_yscale("log")
  ax.set_xlabel("training step")
  ax.set_ylabel("bits per sequence (fresh data, training lengths)" if key == "eval_loss" else key)
  ax.legend()
  ax.set_title(f"{summary.get('task', '')} / {summary.get('model', '')}: "
               f"{len(summary['seeds'])} seeds")
  fig.tight_layout()
  return _save(fig, path)


def steps_to_converge(summary: dict, path: str) -> str:
  """Histogram and empirical CDF of the steps each seed took. 1200 x 500 px."""
  steps = np.sort([s["converged_step"] for s in summary["seeds"]
                   if s["converged_step"] is not None])
  total = len(summary["seeds"])
  fig, (hist, cdf) = plt.subplots(1, 2, figsize=(12, 5))
  if steps.size:
    hist.hist(steps, bins=min(20, max(5, steps.size)), color="tab:blue")
    cdf.step(np.concatenate([[0], steps]), np.arange(steps.size + 1) / total, where="post")
  hist.set_xlabel("steps to converge")
  hist.set_ylabel("seeds")
  cdf.set_xlabel("training step")
  cdf.set_ylabel("fraction of all seeds converged")
  cdf.set_ylim(0, 1)
  fig.suptitle(f"{steps.size} of {total} seeds converged ({total - steps.size} did not)")
  fig.tight_layout()
  return _save(fig, path)


def generalisation(summaries: Dict[str, dict], path: str) -> str:
  """Bit errors per sequence against test length: a faint line per seed and
  a bold median per label (e.g. {"NTM": ..., "LSTM": ...}). 1000 x 600 px."""
  fig, ax = plt.subplots(figsize=(10, 6))
  for (label, summary), colour in zip(summaries.items(), plt.rcParams["axes.prop_cycle"]):
    lengths = [int(n) for n in summary["aggregate"]["median_bit_errors_by_length"]]
    keys = [str(n) for n in lengths]
    values = np.array([[np.nan if s["bit_errors_by_length"][k] is None
                        else s["bit_errors_by_length"][k] for k in keys]
                       for s in summary["seeds"]], float)
    for row in values:
      ax.plot(lengths, row + 1e-2, color=colour["color"], alpha=0.2, linewidth=0.8)
    ax.plot(lengths, np.nanmedian(values, axis=0) + 1e-2, color=colour["color"], linewidth=2.5,
            marker="o", label=f"{label} median ({len(values)} seeds)")
  ax.set_yscale("log")
  ax.set_xlabel("test sequence length")
  ax.set_ylabel("bit errors per sequence (+0.01)")
  ax.axhline(1.0 + 1e-2, color="gray", linestyle=":", linewidth=1)
  ax.legend()
  fig.tight_layout()
  return _save(fig, path)
