"""summary.json: per-seed and aggregate results, the printed table, and the
numbers sweeps rank by. NumPy only (no jax), so the W&B logger and the sweep
runner can use it without starting the engine."""
import math

import numpy as np


def _finite_or_none(x: float):
  x = float(x)
  return round(x, 5) if math.isfinite(x) else None


def as_list(array) -> list:
  return [_finite_or_none(v) for v in np.asarray(array).ravel()]


def _quartiles(values):
  if not values:
    return None, None, None
  q1, median, q3 = np.percentile(values, [25, 50, 75])
  return float(q1), float(median), float(q3)


def _by_length(values, lengths) -> dict:
  return {str(n): _finite_or_none(values[j]) for j, n in enumerate(lengths)}


def _median_by_length(values, lengths, rows=None) -> dict:
  """Median over seeds (optionally only `rows`) of [S, L] values, per length."""
  values = np.asarray(values, float)
  if rows is not None:
    values = values[rows]
  out = {}
  for j, n in enumerate(lengths):
    column = values[:, j] if values.size else np.array([])
    finite = column[np.isfinite(column)]
    out[str(n)] = _finite_or_none(np.median(finite)) if finite.size else None
  return out


def _test_aggregate(results: dict, lengths, converged_rows, healthy_rows) -> dict:
  """Medians and counts over the seeds that did not diverge (`healthy_rows`)."""
  errors = np.asarray(results["bit_errors"])
  healthy = errors[np.asarray(healthy_rows, int)]
  aggregate = {
      "median_bit_errors_by_length": _median_by_length(errors, lengths, healthy_rows),
      "median_converged_bit_errors_by_length": _median_by_length(errors, lengths,
                                                                 converged_rows),
      "seeds_under_1_bit_error_by_length": {
          str(n): int(np.sum(healthy[:, j] < 1.0)) for j, n in enumerate(lengths)},
      "median_bits_by_length": _median_by_length(results["bits"], lengths, healthy_rows),
  }
  if "optimal_bits" in results:
    aggregate["median_optimal_bits_by_length"] = _median_by_length(
        results["optimal_bits"], lengths, healthy_rows)
  return aggregate


def reported_parameters(config) -> str:
  """summary.json's account of which parameters each seed's tests used."""
  from ntm_jax import models  # loads jax: only the engine, which has, asks for this
  t = config.train
  memory = models.memory_size_for(config.model, t.eval_memory_size)
  return ("best: the parameters of the evaluation with the lowest convergence value, "
          "ties broken by the lowest cost in bits (per seed: best_step, best_eval, "
          f"best_cost); an evaluation every {t.eval_every} steps on about {t.eval_batch} "
          f"fresh sequences of lengths {t.min_length}-{t.max_length}"
          + (f" with {memory} memory rows" if memory else ""))


def summarize(config, states, results: dict, timing: dict, param_count: int,
              converge_metric: str = "bit_errors") -> dict:
  """summary.json's content from the final (unpadded) states on the host.

  Args:
    results: {"main": test results, variant name: ...}, each a dict of
      [seeds, test lengths] arrays ("bits", "bit_errors", maybe
      "optimal_bits") on the best parameters of each seed.
  """
  seeds = [_seed_summary(config.train, states, results, i) for i in range(config.train.seeds)]
  return {"task": config.task, "model": config.model_kind, "seeds": seeds,
          "aggregate": _aggregate(config, seeds, results, param_count, converge_metric),
          "timing": timing}


def _seed_summary(t, states, results: dict, i: int) -> dict:
  """summary.json's entry of seed i (`t`: the TrainConfig)."""
  lengths = t.test_lengths
  variants = [name for name in results if name != "main"]
  # Steps skipped as gradient spikes of a converged seed
  # (`--skip_spikes_while_converged`), when that is on.
  skipped = getattr(getattr(states, "opt_state", None), "skipped", None)
  converged = int(states.first_converged_step[i])
  diverged_step = int(states.diverged_step[i])
  best_step = int(states.best_step[i])
  last_eval = float(states.last_eval[i])
  seed = {
      "seed": t.seed + i,
      # The first step of the first streak of converge_patience
      # evaluations below the threshold: converged at some point.
      "converged_step": converged if converged >= 0 else None,
      # Still converged when the run ended, and its last evaluation too.
      "converged_at_end": bool(int(states.converged_step[i]) >= 0
                               and last_eval < t.converge_threshold),
      "diverged": bool(states.diverged[i]),
      "diverged_step": diverged_step if diverged_step >= 0 else None,
      "collapses": int(states.collapses[i]),
      "final_eval": _finite_or_none(states.last_eval[i]),
      "best_eval": _finite_or_none(states.best_eval[i]),
      "best_cost": _finite_or_none(states.best_cost[i]),
      "best_step": best_step if best_step >= 0 else None,
      "bit_errors_by_length": _by_length(results["main"]["bit_errors"][i], lengths),
      "bits_by_length": _by_length(results["main"]["bits"][i], lengths),
  }
  if skipped is not None:
    seed["skipped_steps"] = int(skipped[i])
  if "optimal_bits" in results["main"]:
    seed["optimal_bits_by_length"] = _by_length(results["main"]["optimal_bits"][i], lengths)
  if variants:
    seed["variants"] = {name: {
        "bit_errors_by_length": _by_length(results[name]["bit_errors"][i], lengths),
        "bits_by_length": _by_length(results[name]["bits"][i], lengths)}
        for name in variants}
  return seed


def _aggregate(config, seeds: list, results: dict, param_count: int,
               converge_metric: str) -> dict:
  """summary.json's "aggregate": counts, quartiles and test medians over `seeds`."""
  t = config.train
  lengths = t.test_lengths
  variants = [name for name in results if name != "main"]
  # A diverged seed is frozen at non-finite-loss parameters whose evaluations
  # mean nothing (eval losses near 1e14): it counts as diverged, never as
  # converged, and stays out of every median and quartile.
  healthy_rows = [i for i, s in enumerate(seeds) if not s["diverged"]]
  converged_rows = [i for i in healthy_rows if seeds[i]["converged_step"] is not None]
  steps = [seeds[i]["converged_step"] for i in converged_rows]
  q1, median, q3 = _quartiles(steps)
  aggregate = {
      "seeds": t.seeds,
      # The test results are on each seed's reported parameters:
      "reported_parameters": reported_parameters(config),
      "converged": len(steps),
      "converged_at_end": sum(seeds[i]["converged_at_end"] for i in healthy_rows),
      "diverged": sum(s["diverged"] for s in seeds),
      "collapsed": sum(s["collapses"] > 0 for s in seeds),
      "steps_to_converge": {"q1": q1, "median": median, "q3": q3},
      "converge_metric": converge_metric,
      "converge_threshold": t.converge_threshold,
      **_test_aggregate(results["main"], lengths, converged_rows, healthy_rows),
      "test_memory_size": t.test_memory_size,
      "param_count": param_count,
  }
  if variants:
    aggregate["variants"] = {name: _test_aggregate(results[name], lengths, converged_rows,
                                                   healthy_rows)
                             for name in variants}
  return aggregate


def sweep_metrics(summary: dict) -> dict:
  """The numbers a sweep ranks runs by, from a summary (W&B and local alike)."""
  agg = summary["aggregate"]
  longest = list(agg["seeds_under_1_bit_error_by_length"])[-1]
  metrics = {"converged_fraction": agg["converged"] / agg["seeds"],
             "median_steps_to_converge": agg["steps_to_converge"]["median"],
             "diverged_fraction": agg["diverged"] / agg["seeds"],
             # Generalisation: seeds under 1 bit error at the longest test
             # length, ties broken by the median cost there (lower is better).
             "under_1_bit_at_longest_fraction":
                 agg["seeds_under_1_bit_error_by_length"][longest] / agg["seeds"],
             "median_bits_at_longest": agg["median_bits_by_length"][longest]}
  if "converged_at_end" in agg:
    metrics["converged_at_end_fraction"] = agg["converged_at_end"] / agg["seeds"]
  return metrics


def format_summary(summary: dict) -> str:
  """The printed end-of-run table: the text form of summary.json."""
  agg = summary["aggregate"]
  lengths = list(agg["median_bit_errors_by_length"])
  def cell(v):
    return "nan" if v is None else f"{v:.2f}"
  def row(label, values):
    return f"{label:<30}" + " ".join(f"{cell(values[n]) if not isinstance(values[n], int) else values[n]:>6}"
                                     for n in lengths)
  header = (f"{'seed':>5} {'converged':>9} {'end':>4} {'div':>4} {'coll':>4} {'best@':>6} "
            + " ".join(f"L{n:>5}" for n in lengths))
  lines = [f"{summary['task']} / {summary['model']}: bit errors per sequence by test length "
           f"(memory {agg['test_memory_size']}) on each seed's best parameters "
           f"(best@: the step they are from)", header]
  for s in summary["seeds"]:
    conv = "-" if s["converged_step"] is None else str(s["converged_step"])
    best = "-" if s.get("best_step") is None else str(s["best_step"])
    lines.append(f"{s['seed']:>5} {conv:>9} {'yes' if s.get('converged_at_end') else '':>4} "
                 f"{'yes' if s['diverged'] else '':>4} {s['collapses'] or '':>4} {best:>6} " +
                 " ".join(f"{cell(s['bit_errors_by_length'][n]):>6}" for n in lengths))
  lines.append(row("median", agg["median_bit_errors_by_length"]))
  lines.append(row("median of converged seeds", agg["median_converged_bit_errors_by_length"]))
  lines.append(row("seeds < 1 bit error", agg["seeds_under_1_bit_error_by_length"]))
  lines.append(row("median cost (bits)", agg["median_bits_by_length"]))
  if "median_optimal_bits_by_length" in agg:
    lines.append(row("optimal predictor's cost (bits)", agg["median_optimal_bits_by_length"]))
  for name, variant in agg.get("variants", {}).items():
    lines.append(row(f"{name}: median", variant["median_bit_errors_by_length"]))
    lines.append(row(f"{name}: median of converged", variant["median_converged_bit_errors_by_length"]))
    lines.append(row(f"{name}: seeds < 1 bit error", variant["seeds_under_1_bit_error_by_length"]))
  stc = agg["steps_to_converge"]
  lines.append(
      f"converged ({agg['converge_metric']} < {agg['converge_threshold']:g}) "
      f"{agg['converged']}/{agg['seeds']}, still converged at the end "
      f"{agg.get('converged_at_end', '?')}, diverged {agg['diverged']}, "
      f"collapsed {agg['collapsed']}; steps to converge median "
      f"{cell(stc['median'])} (q1 {cell(stc['q1'])}, q3 {cell(stc['q3'])}); "
      f"params {agg['param_count']}")
  timing = summary["timing"]
  lines.append(
      f"wall {timing['wall_s']:.0f}s: compile {timing['compile_s']:.0f}s, training "
      f"{timing['train_s']:.0f}s, test {timing['test_s']:.0f}s"
      + (f", strategy statistics {timing['strategy_s']:.0f}s" if timing.get("strategy_s") else "")
      + ", outside the training "
      f"step {100 * timing['outside_train_fraction']:.1f}%")
  return "\n".join(lines)


def chunk_report(row: dict, seconds: float, steps: int, diverged=None):
  """(aggregate, per_seed) for loggers from a chunk's last metrics row.

  diverged: optional [seeds] bools; those seeds stay out of the medians,
  minima and maxima (their per-seed values are still reported).
  """
  names = ("loss", "bit_errors", "grad_norm", "eval_loss", "eval_bit_errors",
           "eval_optimal_bits", "eval_excess_bits")
  per_seed = {name: row[name] for name in names if name in row}
  aggregate = {"converged": row["converged"], "diverged": row["diverged"],
               "train_length": row["train_length"], "steps_per_s": steps / seconds}
  for name in ("loss", "eval_loss", "eval_bit_errors", "eval_excess_bits"):
    if name not in row:
      continue
    values = np.array([np.nan if v is None else v for v in row[name]], float)
    if diverged is not None:
      values[np.asarray(diverged, bool)[:values.size]] = np.nan
    if np.isfinite(values).any():
      aggregate[f"{name}/median"] = float(np.nanmedian(values))
      aggregate[f"{name}/min"] = float(np.nanmin(values))
      aggregate[f"{name}/max"] = float(np.nanmax(values))
  return aggregate, per_seed


