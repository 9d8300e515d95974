"""How each seed of finished runs solved its task, and what predicts failing
the long test.

    python -m experiments.strategy RUN_DIR [RUN_DIR ...] [--table=false]
        [--rule "delimiter_offset_train>0.0625"]

For every seed's reported parameters: the task's strategy statistics
(`ntm_jax.analysis.strategy`) at the training length and at length 120.
Writes RUN_DIR/strategy.json (per seed: statistics and bit errors at length
120 from summary.json) and RUN_DIR/plots/strategy_train.png and
strategy_L120.png (each statistic against those bit errors), when RUN_DIR is
writable. Prints the per-seed table of each run, then, for the
training-length statistics, over the seeds of all RUN_DIRs pooled: how well
each separates the seeds that fail length 120 (>= 1 bit error per
sequence) from those that pass (ROC AUC, and the best single threshold with
its confusion counts). With --rule, a cut chosen beforehand (on other
runs) is applied to these seeds as well, printed and written into each
strategy.json as "rule": a held-out check. No training: about ten seconds
per run, most of it compiling the model at two lengths.
"""
import os
import sys

from absl import app
from absl import flags

_TABLE = flags.DEFINE_bool("table", True, "Print each run's per-seed table of statistics.")
_RULE = flags.DEFINE_string(
    "rule", None, 'A fixed rule "STATISTIC>VALUE" or "STATISTIC<VALUE" (fail if '
    'so), applied to the seeds as a held-out check.')


def parse_rule(text):
  """"NAME>VALUE" or "NAME<VALUE" -> (name, "above" | "below", value); None
  for None. ValueError (one line) otherwise."""
  if text is None:
    return None
  for sign, direction in ((">", "above"), ("<", "below")):
    name, found, value = text.partition(sign)
    if found and name.strip():
      try:
        return name.strip(), direction, float(value)
      except ValueError:
        break
  raise ValueError(f'--rule must be "STATISTIC>VALUE" or "STATISTIC<VALUE", got {text!r}')


def _check_inputs(run_dirs) -> None:
  """Every RUN_DIR, before anything is computed or written: raises
  ValueError (one line)."""
  from ntm_jax.runs import rundir
  if not run_dirs:
    raise ValueError("usage: python -m experiments.strategy RUN_DIR [RUN_DIR ...]")
  for run_dir in run_dirs:
    if not os.path.isdir(run_dir):
      raise ValueError(f"RUN_DIR {run_dir} is not a directory")
    if not os.path.exists(rundir.config_path(run_dir)):
      raise ValueError(f"{run_dir} is not a run directory (no config.json)")
    config = rundir.saved_config(run_dir)  # names config.json if it is broken
    if not hasattr(config.make_task(), "strategy_statistics"):
      raise ValueError(f"{run_dir}: task {config.task!r} has no strategy_statistics")
    if rundir.load_summary(run_dir) is None:
      raise ValueError(f"{run_dir} has not finished (no summary.json)")
    if not os.path.isdir(os.path.join(run_dir, "checkpoints")):
      raise ValueError(f"{run_dir} has no checkpoints: no parameters to probe")


def _writable(run_dir: str) -> bool:
  from ntm_jax.runs import rundir
  try:
    rundir.check_out_dir(run_dir, flag="RUN_DIR")
    rundir.check_out_dir(os.path.join(run_dir, "plots"), flag="RUN_DIR's plots folder")
  except ValueError:
    return False
  return True


def _number(value) -> str:
  return "       -" if value is None else f"{value:8.3g}"


def format_table(records: list) -> list:
  """Lines of one run's table: a row per statistic, a column per seed."""
  from ntm_jax.analysis import strategy
  key = f"bit_errors_L{strategy.LONG_LENGTH}"
  names = sorted({n for r in records for n in r["statistics"]},
                 key=lambda n: (not n.endswith("_train"), n))
  width = max([len(key)] + [len(n) for n in names])
  lines = [" " * width + "".join(f"{'seed ' + str(r['seed_index']):>8}" for r in records)]
  lines.append(key.ljust(width) + "".join(_number(r[key]) for r in records))
  lines += [name.ljust(width) + "".join(_number(r["statistics"].get(name)) for r in records)
            for name in names]
  return lines


def format_separation(separation: dict, seeds: int, runs: int) -> list:
  """Lines of the pooled table: a row per training-length statistic."""
  from ntm_jax.analysis import strategy
  long = strategy.LONG_LENGTH
  lines = [f"training-length statistics against failing length {long} "
           f"(>= {strategy.FAIL_BIT_ERRORS:g} bit error per sequence), {seeds} seeds of "
           f"{runs} run(s); AUC: the chance that a failing seed scores above a passing "
           "one (0.5: no better than chance, 0 or 1: perfect)"]
  width = max([9] + [len(n) for n in separation])
  lines.append(f"{'statistic':<{width}}    n fail    AUC  best threshold        "
               "bal.acc  tp fp tn fn")
  for name, s in separation.items():
    rule = ("-" if s["threshold"] is None else
            f"fail if {'>' if s['direction'] == 'above' else '<'} {s['threshold']:.4g}")
    auc = "     -" if s["auc"] is None else f"{s['auc']:6.2f}"
    lines.append(f"{name:<{width}} {s['n']:4d} {s['failing']:4d} {auc}  {rule:<20} "
                 f"{s['balanced_accuracy']:7.2f} {s['tp']:3d}{s['fp']:3d}{s['tn']:3d}"
                 f"{s['fn']:3d}")
  return lines


def format_rule(counts: dict) -> str:
  sign = ">" if counts["direction"] == "above" else "<"
  return (f"rule: fail if {counts['name']} {sign} {counts['threshold']:g}: flags "
          f"{counts['flagged']} of {counts['n']} seeds, {counts['tp']} of them failing; of "
          f"the {counts['tn'] + counts['fn']} not flagged, {counts['tn']} pass "
          f"(tp {counts['tp']} fp {counts['fp']} tn {counts['tn']} fn {counts['fn']})")


def report(run_dirs, table: bool = True, log=print, rule=None) -> list:
  """Everything the command does; returns the pooled seed records. `rule`:
  `parse_rule`'s (name, direction, threshold) or None."""
  from ntm_jax.analysis import strategy, strategy_plots
  from ntm_jax.runs import checkpoints, rundir
  pooled = []
  for run_dir in run_dirs:
    config, summary = checkpoints.load_config(run_dir), checkpoints.load_summary(run_dir)
    records = strategy.seed_records(run_dir, strategy.run_statistics(run_dir), summary)
    _check_rule_names(rule, records, run_dir)
    pooled += records
    settings = strategy.probe_settings(config, config.make_task())
    log(f"{run_dir}: {len(records)} seeds; probed on {settings['sequences']} sequences "
        f"each of lengths {settings['train_length']} and {settings['long_length']} with "
        f"{settings['memory_size']} memory rows")
    if table:
      for line in format_table(records):
        log(line)
    if not _writable(run_dir):
      log(f"note: {run_dir} is not writable: strategy.json and its plots not written")
      continue
    own = strategy.separation(records)
    extra = {} if rule is None else {"rule": strategy.rule_counts(records, *rule)}
    rundir.write_json(os.path.join(run_dir, "strategy.json"), {
        "probe": settings, "fail_bit_errors": strategy.FAIL_BIT_ERRORS,
        "seeds": records, "separation_train": own, **extra})
    written = [os.path.join(run_dir, "strategy.json")]
    written += strategy_plots.draw_run(run_dir, summary, os.path.join(run_dir, "plots"),
                                       records=records)
    log("wrote " + ", ".join(written))
  log("")
  for line in format_separation(strategy.separation(pooled), len(pooled), len(run_dirs)):
    log(line)
  if rule is not None:
    _check_rule_names(rule, pooled, "these runs")
    log(format_rule(strategy.rule_counts(pooled, *rule)))
  return pooled


def _check_rule_names(rule, records, where) -> None:
  if rule is not None and not any(rule[0] in r["statistics"] for r in records):
    raise ValueError(f"--rule: {where} record no statistic {rule[0]!r}")


def main(argv):
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # orbax's info lines
  # The same directory given twice would count its seeds twice.
  run_dirs = list(dict.fromkeys(os.path.normpath(d) for d in argv[1:]))
  try:
    rule = parse_rule(_RULE.value)
    _check_inputs(run_dirs)
    report(run_dirs, table=_TABLE.value, rule=rule)
  except ValueError as error:
    sys.exit(f"error: {error}")


if __name__ == "__main__":
  from experiments.common import parse_flags
  app.run(main, flags_parser=parse_flags)
