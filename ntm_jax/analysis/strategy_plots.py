"""The strategy statistics against the long test's bit errors, one panel per
statistic, a point per seed (matplotlib, through `plots`' figure helpers)."""
import math
import os
from typing import Optional

import numpy as np

import ntm_jax.analysis.plots as plots
import ntm_jax.analysis.strategy as strategy

_COLUMNS = 4
_PANEL = (3.2, 2.6)  # inches per panel


def statistics_grid(records: list, suffix: str, path: str,
                    aucs: Optional[dict] = None, title: str = "") -> Optional[str]:
  """One PNG: for each statistic ending in `suffix`, every seed of
  `records` (`strategy.seed_records`) at (its value, its bit errors per
  sequence at LONG_LENGTH + 0.01, log scale), failing seeds in red, a dotted
  line at 1 bit error; `aucs` ({name: AUC}) go into the panel titles.

  Returns the path, or None when no statistic ends in `suffix`."""
  names = sorted({n for r in records for n in r["statistics"] if n.endswith(suffix)})
  if not names:
    return None
  key = f"bit_errors_L{strategy.LONG_LENGTH}"
  rows = math.ceil(len(names) / _COLUMNS)
  fig, axes = plots.plt.subplots(rows, _COLUMNS, squeeze=False, layout="constrained",
                                 figsize=(_PANEL[0] * _COLUMNS, _PANEL[1] * rows),
                                 dpi=plots.DPI)
  errors = np.array([np.nan if r[key] is None else r[key] for r in records], float)
  failing = errors >= strategy.FAIL_BIT_ERRORS
  for ax, name in zip(axes.ravel(), names):
    values = np.array([np.nan if r["statistics"].get(name) is None
                       else r["statistics"][name] for r in records], float)
    for chosen, colour, label in ((~failing, "tab:blue", "passes"),
                                  (failing, "tab:red", "fails")):
      ax.scatter(values[chosen], errors[chosen] + 1e-2, s=18, color=colour, label=label)
    ax.set_yscale("log")
    ax.axhline(1.0 + 1e-2, color="gray", linestyle=":", linewidth=1)
    auc = (aucs or {}).get(name)
    ax.set_title(name + ("" if auc is None else f"  (AUC {auc:.2f})"), fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in axes.ravel()[len(names):]:
    ax.set_visible(False)
  axes[0, 0].set_ylabel(f"bit errors/seq at L{strategy.LONG_LENGTH} (+0.01)", fontsize=7)
  axes[0, 0].legend(fontsize=7)
  fig.suptitle(title or f"strategy statistics ({suffix.strip('_')}) against bit errors "
               f"at length {strategy.LONG_LENGTH}", fontsize=10)
  return plots._save(fig, path)


def draw_run(run_dir: str, summary: dict, out_dir: str, records: Optional[list] = None,
             title: Optional[str] = None) -> list:
  """strategy_train.png and strategy_L<long>.png of one run into out_dir,
  from the statistics its summary.json records per seed (or `records`,
  `strategy.seed_records`), each panel titled with its AUC on this run's
  seeds; [] when the run recorded none or never tested LONG_LENGTH."""
  if records is None:
    seeds = summary.get("seeds", [])
    if not seeds or not all("strategy" in seed for seed in seeds):
      return []
    records = strategy.seed_records(run_dir, {i: seed["strategy"]
                                              for i, seed in enumerate(seeds)}, summary)
  if all(r[f"bit_errors_L{strategy.LONG_LENGTH}"] is None for r in records):
    return []
  aucs = {name: s["auc"] for name, s in strategy.separation(records).items()}
  paths = []
  for suffix in ("_train", f"_L{strategy.LONG_LENGTH}"):
    path = statistics_grid(
        records, suffix, os.path.join(out_dir, f"strategy{suffix}.png"), aucs=aucs,
        title=title or f"{run_dir}: strategy statistics ({suffix.strip('_')})")
    paths += [path] if path else []
  return paths
