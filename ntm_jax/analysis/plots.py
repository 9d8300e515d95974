"""Pictures of what an NTM learned and how its seeds trained (matplotlib, Agg).

Every function takes numpy-like arrays or dicts plus a path, writes one PNG
there (creating its folder) and returns the path. Nothing needs a display.
Every figure is drawn at `DPI` dots per inch on its size in inches (`SIZES`)
without tight bounding boxes, so a PNG is exactly `pixel_size(name)` pixels.
"""
import os
import warnings
from typing import Dict, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

DPI = 100
SIZES = {"head_weightings": (12, 9), "memory_matrix": (12, 5), "learning_curves": (10, 6),
         "steps_to_converge": (12, 5), "generalisation": (10, 6)}  # inches


def pixel_size(name: str) -> tuple:
  """(width, height) in pixels of the PNG that plot function `name` writes."""
  width, height = SIZES[name]
  return width * DPI, height * DPI


def _figure(name: str, *args, **kwargs):
  return plt.subplots(*args, figsize=SIZES[name], dpi=DPI, **kwargs)


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": the size stays fixed
  plt.close(fig)
  return path


def used_rows(weights, threshold: float = 0.01) -> np.ndarray:
  """The memory rows any head weighted above `threshold`, as one contiguous
  circular range (memory addressing wraps around), in display order.

  Args:
    weights: [T, H, N] (any number of heads; concatenate read and write).

  Returns:
    int array of row indices, e.g. [3, 4, 5, 6, 7], or [126, 127, 0, 1] when
    the heads wrapped around from the last row to the first. All N rows when
    no row passes the threshold. The range is the smallest circular arc that
    holds every active row (the complement of the longest run of idle rows).
  """
  weights = np.asarray(weights)
  n = weights.shape[-1]
  active = weights.reshape(-1, n).max(axis=0) > threshold
  if active.all() or not active.any():
    return np.arange(n)
  # The longest circular run of idle rows; the used arc starts right after it.
  idle = np.concatenate([~active, ~active])
  best_len, best_end, run = 0, 0, 0
  for i, is_idle in enumerate(idle):
    run = run + 1 if is_idle else 0
    if run > best_len:
      best_len, best_end = run, i
  best_len = min(best_len, n)
  start = (best_end + 1) % n
  return (start + np.arange(n - best_len)) % n


def head_weightings(inputs, targets, outputs, read_weights, write_weights, path: str,
                    rows: str = "used", title: Optional[str] = None,
                    threshold: float = 0.01) -> str:
  """The paper's Figure 6: inputs, targets and outputs above, the heads' write
  and read weightings below (time on x, memory rows on y, 0..1 as colour).

  Args:
    inputs: [T, I]; targets, outputs: [T, O] (outputs as sigmoid probabilities).
    read_weights: [T, R, N]; write_weights: [T, W, N].
    path: where the PNG goes.
    rows: "used" (default) shows only the rows any head weighted above
      `threshold`, as one contiguous circular range (see `used_rows`; row
      labels are the true row numbers); "all" shows all N rows.
    title: optional line above the figure.

  Returns:
    path of a 1200 x 900 pixel PNG.
  """
  if rows not in ("used", "all"):
    raise ValueError(f"rows must be 'used' or 'all', got {rows!r}")
  read_weights, write_weights = np.asarray(read_weights), np.asarray(write_weights)
  n = read_weights.shape[-1]
  shown = (used_rows(np.concatenate([read_weights, write_weights], axis=1), threshold)
           if rows == "used" else np.arange(n))
  heads = ([(f"write head {h}", write_weights[:, h]) for h in range(write_weights.shape[1])]
           + [(f"read head {h}", read_weights[:, h]) for h in range(read_weights.shape[1])])
  panels = [("inputs", np.asarray(inputs)), ("targets", np.asarray(targets)),
            ("outputs", np.asarray(outputs))]
  fig, axes = _figure("head_weightings", len(panels) + len(heads), 1, sharex=True,
                      squeeze=False, layout="constrained")
  for ax, (name, values) in zip(axes[:, 0], panels):
    ax.imshow(values.T, aspect="auto", cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_ylabel(name)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
  label = FuncFormatter(lambda y, _: (str(int(shown[int(round(y))]))
                                      if 0 <= round(y) < len(shown) else ""))
  for ax, (name, values) in zip(axes[len(panels):, 0], heads):
    image = ax.imshow(values[:, shown].T, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                      interpolation="nearest")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.yaxis.set_major_formatter(label)
    ax.set_ylabel(f"{name}\nmemory row")
  fig.colorbar(image, ax=axes[len(panels):, 0].tolist(), label="weight", shrink=0.9)
  axes[-1, 0].set_xlabel("time step")
  wraps = ", wrapping from row {} to 0".format(n - 1) if shown[0] > shown[-1] else ""
  what = (f"rows {shown[0]}..{shown[-1]} of {n} (the rows in use{wraps})" if len(shown) < n
          else f"all {n} rows")
  fig.suptitle(f"{title + ': ' if title else ''}{what}")
  return _save(fig, path)


def memory_matrix(memory, steps: Sequence[int], path: str, rows=None) -> str:
  """The memory after chosen time steps, one panel per step.

  Args:
    memory: [T, N, M] (the memory after each step, e.g. trace["memory"][b])
      or one [N, M] matrix (then `steps` is ignored).
    steps: time indices into memory's first axis.
    path: where the PNG goes.
    rows: optional row indices to show, in order (e.g. `used_rows(...)`);
      default all N rows.

  Colours are symmetric around 0 (red +, blue -), scaled to the largest |value|
  shown. Returns the path of a 1200 x 500 pixel PNG.
  """
  memory = np.asarray(memory)
  if memory.ndim == 2:
    memory, steps, titles = memory[None], [0], ["memory"]
  else:
    steps = [int(s) % memory.shape[0] for s in steps]
    titles = [f"after step {s}" for s in steps]
  shown = np.arange(memory.shape[1]) if rows is None else np.asarray(rows)
  picked = memory[steps][:, shown]
  limit = max(float(np.abs(picked).max()), 1e-6)
  fig, axes = _figure("memory_matrix", 1, len(steps), squeeze=False, layout="constrained")
  label = FuncFormatter(lambda y, _: (str(int(shown[int(round(y))]))
                                      if 0 <= round(y) < len(shown) else ""))
  for ax, values, name in zip(axes[0], picked, titles):
    image = ax.imshow(values, aspect="auto", cmap="RdBu_r", interpolation="nearest",
                      vmin=-limit, vmax=limit)
    ax.set_title(name)
    ax.set_xlabel("memory column")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    ax.yaxis.set_major_formatter(label)
  axes[0, 0].set_ylabel("memory row")
  fig.colorbar(image, ax=axes[0].tolist(), label="value")
  return _save(fig, path)


def _seed_kind(seed: dict) -> str:
  if seed.get("diverged"):
    return "diverged"
  return "converged" if seed.get("converged_step") is not None else "not converged"


_KIND_COLOURS = {"converged": "tab:blue", "not converged": "tab:orange", "diverged": "tab:red"}
_FLOOR = 1e-3  # log-scale floor for losses and errors of 0


def learning_curves(rows: Sequence[dict], summary: dict, path: str,
                    key: str = "eval_loss") -> str:
  """Every seed's curve faint, coloured by how it ended (converged, not
  converged, diverged), and the median over seeds bold; log y scale.

  Args:
    rows: metrics.jsonl lines (dicts with "step" and per-seed lists).
    summary: summary.json's content (its "seeds" give each seed's fate).
    path: where the PNG goes.
    key: the per-seed metric to draw: "eval_loss" (default; bits per
      sequence on fresh data, every eval_every steps), "loss" (the training
      batch, every step), "eval_bit_errors" or "bit_errors".

  Values of 0 are drawn at 1e-3 (a log scale has no 0); missing (NaN)
  values leave gaps. Returns the path of a 1000 x 600 pixel PNG.
  """
  rows = [r for r in rows if key in r]
  seeds = summary["seeds"]
  steps = np.array([r["step"] for r in rows])
  values = np.array([[np.nan if v is None else v for v in r[key]] for r in rows],
                    float).reshape(len(rows), -1)
  fig, ax = _figure("learning_curves", layout="constrained")
  counts = {}
  for seed in seeds:
    kind = _seed_kind(seed)
    counts[kind] = counts.get(kind, 0) + 1
  seen = set()
  for i, seed in enumerate(seeds[:values.shape[1]]):
    kind = _seed_kind(seed)
    ax.plot(steps, np.clip(values[:, i], _FLOOR, None), color=_KIND_COLOURS[kind],
            alpha=0.35, linewidth=0.8,
            label=None if kind in seen else f"{kind} ({counts[kind]} seeds)")
    seen.add(kind)
  if len(rows):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps
      median = np.nanmedian(values, axis=1)
    ax.plot(steps, np.clip(median, _FLOOR, None), color="black", linewidth=2.5,
            label="median over seeds")
  else:
    ax.text(0.5, 0.5, f"no {key} in metrics.jsonl", transform=ax.transAxes, ha="center")
  ax.set_yscale("log")
  ax.set_xlabel("training step")
  ax.set_ylabel({"eval_loss": "bits per sequence (fresh sequences, training lengths)",
                 "loss": "bits per sequence (training batch)",
                 "eval_bit_errors": "bit errors per sequence (fresh sequences)",
                 "bit_errors": "bit errors per sequence (training batch)"}.get(key, key))
  ax.legend(loc="upper right")
  ax.set_title(f"{summary.get('task', '')} / {summary.get('model', '')}: "
               f"{len(seeds)} seeds (0 drawn at {_FLOOR:g})")
  return _save(fig, path)


def steps_to_converge(summary: dict, path: str, total_steps: Optional[int] = None) -> str:
  """Histogram (left) and empirical CDF over all seeds (right) of the step at
  which each seed converged; the title counts the seeds that did not.

  Args:
    summary: summary.json's content.
    path: where the PNG goes.
    total_steps: the run's length; extends the CDF to the end of training.

  Returns the path of a 1200 x 500 pixel PNG.
  """
  steps = np.sort([s["converged_step"] for s in summary["seeds"]
                   if s["converged_step"] is not None]).astype(float)
  total = len(summary["seeds"])
  fig, (hist, cdf) = _figure("steps_to_converge", 1, 2, layout="constrained")
  end = max([total_steps or 0] + list(steps))
  if steps.size:
    hist.hist(steps, bins=min(20, max(5, steps.size)), color="tab:blue")
    xs = np.concatenate([[0], steps, [end]])
    ys = np.concatenate([[0], np.arange(1, steps.size + 1), [steps.size]]) / total
    cdf.step(xs, ys, where="post", color="tab:blue")
    median = float(np.median(steps))
    hist.axvline(median, color="black", linestyle="--", label=f"median {median:,.0f}")
    hist.legend()
  else:
    for ax in (hist, cdf):
      ax.text(0.5, 0.5, "no seed converged", transform=ax.transAxes, ha="center")
  hist.set_xlabel("steps to converge")
  hist.set_ylabel("seeds")
  cdf.axhline(steps.size / total, color="gray", linestyle=":", linewidth=1)
  cdf.set_xlabel("training step")
  cdf.set_ylabel("fraction of all seeds converged")
  cdf.set_ylim(0, 1.02)
  if end:
    cdf.set_xlim(0, end)
  not_converged = total - steps.size
  diverged = sum(bool(s.get("diverged")) for s in summary["seeds"])
  fig.suptitle(f"{summary.get('task', '')} / {summary.get('model', '')}: "
               f"{steps.size} of {total} seeds converged; {not_converged} did not"
               + (f" ({diverged} diverged)" if diverged else ""))
  return _save(fig, path)


def generalisation(summaries: Dict[str, dict], path: str) -> str:
  """Bit errors per sequence against test length: a faint line per seed and
  a bold median per label, one colour per label (e.g. {"NTM": ntm_summary,
  "LSTM": lstm_summary} share one chart). Log y scale with 0.01 added (so
  perfect seeds show at 0.01); a dotted line marks 1 bit error.

  Returns the path of a 1000 x 600 pixel PNG.
  """
  fig, ax = _figure("generalisation", layout="constrained")
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for k, (label, summary) in enumerate(summaries.items()):
    colour = colours[k % len(colours)]
    keys = sorted(summary["seeds"][0]["bit_errors_by_length"], key=int) if summary["seeds"] else []
    lengths = [int(n) for n in keys]
    values = np.array([[np.nan if s["bit_errors_by_length"].get(n) is None
                        else s["bit_errors_by_length"][n] for n in keys]
                       for s in summary["seeds"]], float).reshape(len(summary["seeds"]), -1)
    for row in values:
      ax.plot(lengths, row + 1e-2, color=colour, alpha=0.25, linewidth=0.8)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)  # a length where every seed is NaN
      median = np.nanmedian(values, axis=0) if len(values) else np.array([])
    ax.plot(lengths, median + 1e-2, color=colour, linewidth=2.5, marker="o",
            label=f"{label}: median of {len(values)} seeds (faint: each seed)")
  ax.set_yscale("log")
  ax.set_xlabel("test sequence length")
  ax.set_ylabel("bit errors per sequence (+0.01)")
  ax.axhline(1.0 + 1e-2, color="gray", linestyle=":", linewidth=1, label="1 bit error")
  memory = {s.get("aggregate", {}).get("test_memory_size") for s in summaries.values()}
  memory.discard(None)
  ax.set_title("generalisation to longer sequences"
               + (f" (memory {', '.join(map(str, sorted(memory)))} rows)" if memory else ""))
  ax.legend(loc="upper left")
  return _save(fig, path)
