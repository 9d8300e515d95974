"""RESULTS.md's tables, rendered from the runs committed under results/.

    python -m experiments.report --add RUN_DIR results/TASK/NAME   # record a run
    python -m experiments.report                                   # re-render RESULTS.md
    python -m experiments.report --check                           # exit 1 if stale

A recorded run is a folder `results/<task>/<name>/` holding the run's
config.json and summary.json as written, its evaluation rows (metrics.jsonl
cut to the rows with evaluations, so `experiments.compare` reads it like a
run directory) and record.json: each training stage's command, commit, date
and wall time (a run continued with --resume adds a stage when it is
recorded again into the same folder).

RESULTS.md holds blocks between `<!-- report: KEY -->` and `<!-- /report -->`
lines; this command rewrites what is between them and nothing else. KEY is
`TASK` (every run under results/TASK/, one table row each) or `TASK/NAME`
(one run), `compare TASK/A TASK/B` (runs at equal training sequences),
`table FOLDER` (one summary row per run) or `failures KEY [KEY ...]` (the
runs' per-sequence copy failures, `experiments/report_failures.py`).
Every median here is NumPy's (the mean of the middle two for an even count),
over the seeds that did not diverge, as in summary.json.
"""
import datetime
import json
import os
import re
import shlex
import shutil
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "results")
RESULTS_MD = os.path.join(ROOT, "RESULTS.md")
_BLOCK = re.compile(r"(<!-- report: (.+?) -->\n)(.*?)(<!-- /report -->)", re.S)


def _load(path):
  with open(path) as f:
    return json.load(f)


def _write_json(path, data):
  with open(path + ".tmp", "w") as f:
    json.dump(data, f, indent=1)
    f.write("\n")
  os.replace(path + ".tmp", path)


# Recording a run ------------------------------------------------------------

def _command(provenance: dict) -> str:
  """The command line a provenance's argv came from, as `python -m ...`."""
  argv = list(provenance.get("argv") or ["?"])
  script = argv[0]
  parts = os.path.normpath(script).split(os.sep)
  if script.endswith(".py") and len(parts) >= 2:
    module = ".".join(parts[-2:])[:-len(".py")]
    head = f"python -m {module}"
  else:
    head = f"python {script}"
  return " ".join([head] + [shlex.quote(a) for a in argv[1:]])


def _stage(provenance: dict) -> dict:
  git = provenance.get("git") or {}
  return {"command": _command(provenance), "commit": (git.get("commit") or "?")[:7],
          "dirty": git.get("dirty"), "finished": None, "steps": None, "wall_s": None,
          "xla_flags": provenance.get("xla_flags", "")}


def _stages(run_dir: str, config: dict, summary: dict, recorded: list) -> list:
  """One stage per process that trained the run (config.json's provenance,
  oldest first); the last is the one that wrote summary.json. A stage
  recorded before (an earlier `--add` of the same run) keeps its steps, date
  and wall time; a stage stopped before it finished has none."""
  provenance = config.get("provenance", {})
  chain = [_stage(p) for p in provenance.get("earlier", []) + [provenance]]
  for stage, before in zip(chain, recorded):
    if before["command"] == stage["command"]:
      stage.update({k: before[k] for k in ("finished", "steps", "wall_s")})
  finished = os.path.getmtime(os.path.join(run_dir, "summary.json"))
  chain[-1].update(
      finished=datetime.datetime.fromtimestamp(
          finished, datetime.timezone.utc).strftime("%Y-%m-%d"),
      steps=config["train"]["steps"], wall_s=round(summary["timing"]["wall_s"]))
  return chain


def add(run_dir: str, dest: str, note: str = "") -> dict:
  """Records the finished run in `run_dir` as `dest` (results/TASK/NAME)."""
  for name in ("config.json", "summary.json", "metrics.jsonl"):
    if not os.path.isfile(os.path.join(run_dir, name)):
      raise ValueError(f"{run_dir} has no {name} (not a finished run directory)")
  config = _load(os.path.join(run_dir, "config.json"))
  summary = _load(os.path.join(run_dir, "summary.json"))
  record_path = os.path.join(dest, "record.json")
  recorded = _load(record_path) if os.path.exists(record_path) else {}
  stages = _stages(run_dir, config, summary, recorded.get("stages", []))
  os.makedirs(dest, exist_ok=True)
  for name in ("config.json", "summary.json"):
    shutil.copyfile(os.path.join(run_dir, name), os.path.join(dest, name))
  with open(os.path.join(run_dir, "metrics.jsonl")) as src, \
       open(os.path.join(dest, "metrics.jsonl"), "w") as out:
    for line in src:
      if '"eval_loss"' in line:
        row = json.loads(line)
        out.write(json.dumps({k: v for k, v in row.items()
                              if k == "step" or k.startswith("eval_")}) + "\n")
  record = {"note": note or recorded.get("note", ""), "stages": stages}
  _write_json(record_path, record)
  return record


# Rendering ------------------------------------------------------------------

def _healthy(summary: dict) -> list:
  return [s for s in summary["seeds"] if not s["diverged"]]


def _median(values):
  values = [v for v in values if v is not None and np.isfinite(v)]
  return float(np.median(values)) if values else None


def _num(value, digits=2) -> str:
  if value is None:
    return "–"
  return f"{value:,.{digits}f}"


def _per_length(seeds, key, lengths, variant=None):
  """[[value per seed] per length] of `key` ("bit_errors_by_length", ...)."""
  def source(s):
    return s["variants"][variant] if variant else s
  return [[source(s)[key][n] for s in seeds] for n in lengths]


def _recorded(record: dict) -> str:
  stages = record["stages"]
  wall = f"{sum(s['wall_s'] or 0 for s in stages):,} s"
  if any(s["wall_s"] is None for s in stages):
    wall += " (+ stages whose wall time was not recorded)"
  dates = sorted({s["finished"] for s in stages if s["finished"]})
  commits = ", ".join(dict.fromkeys(s["commit"] + ("+" if s["dirty"] else "")
                                    for s in stages))
  return f"{' to '.join([dates[0], dates[-1]] if len(dates) > 1 else dates)}, {commits}, {wall}"


def _commands(record: dict) -> str:
  return "; then ".join(f"`{s['command']}`" for s in record["stages"])


def load_run(key: str, results_dir: str = RESULTS_DIR) -> dict:
  path = os.path.join(results_dir, key)
  if not os.path.isfile(os.path.join(path, "summary.json")):
    raise ValueError(f"no recorded run {key} (no {path}/summary.json)")
  return {"key": key, "config": _load(os.path.join(path, "config.json")),
          "summary": _load(os.path.join(path, "summary.json")),
          "record": _load(os.path.join(path, "record.json"))}


def _dyck(run) -> bool:
  return run["config"]["task"] == "dyck"


def _result_rows(run) -> list:
  """(label, [cell per test length]) rows of one run's test results."""
  summary = run["summary"]
  seeds = _healthy(summary)
  lengths = list(summary["seeds"][0]["bit_errors_by_length"])
  rows = []
  variants = [None] + sorted(summary["seeds"][0].get("variants", {}))
  for variant in variants:
    prefix = f"{variant}: " if variant else ""
    errors = _per_length(seeds, "bit_errors_by_length", lengths, variant)
    if _dyck(run):  # one answer per word: bit errors per sequence = error rate
      rows.append((prefix + "median accuracy", [_num(100 * (1 - _median(e)), 1) + "%"
                                                for e in errors]))
      rows.append((prefix + "worst seed's accuracy", [_num(100 * (1 - max(e)), 1) + "%"
                                                      for e in errors]))
      continue
    rows.append((prefix + "median bit errors", [_num(_median(e)) for e in errors]))
    rows.append((prefix + "seeds under 1 bit error",
                 [f"{sum(v is not None and v < 1 for v in e)}/{len(e)}" for e in errors]))
    if variant is None:
      bits = _per_length(seeds, "bits_by_length", lengths)
      rows.append(("median bits", [_num(_median(b)) for b in bits]))
      if "optimal_bits_by_length" in summary["seeds"][0]:
        optimal = _per_length(seeds, "optimal_bits_by_length", lengths)
        rows.append(("optimal predictor's median bits", [_num(_median(o)) for o in optimal]))
        excess = [[100 * (b - o) / o for b, o in zip(bs, os_)]
                  for bs, os_ in zip(bits, optimal)]
        rows.append(("median excess over the optimum",
                     [f"{_median(x):+.1f}%" for x in excess]))
  return [("test length", [str(n) for n in lengths])] + rows


def _convergence(run) -> str:
  agg = run["summary"]["aggregate"]
  return (f"{agg['converged']}/{agg['seeds']} (at the end {agg['converged_at_end']}, "
          f"diverged {agg['diverged']})")


def _sequences(run) -> int:
  train = run["config"]["train"]
  return train["steps"] * train["batch_size"]


def render_run(run) -> str:
  """One run: how it was made, then its test results by length."""
  model = run["config"]["model_kind"]
  lines = [f"`results/{run['key']}`: {model.upper()}, "
           f"{run['summary']['aggregate']['param_count']:,} parameters, "
           f"{run['config']['train']['seeds']} seeds, {_sequences(run):,} training "
           f"sequences per seed; converged {_convergence(run)}; recorded "
           f"{_recorded(run['record'])}. " + (run["record"]["note"] or ""),
           "", f"Command: {_commands(run['record'])}", ""]
  rows = _result_rows(run)
  lines.append("| " + " | ".join([rows[0][0]] + rows[0][1]) + " |")
  lines.append("|" + " --- |" * (len(rows[0][1]) + 1))
  lines += ["| " + " | ".join([label] + cells) + " |" for label, cells in rows[1:]]
  return "\n".join(lines)


def render_compare(keys, results_dir: str = RESULTS_DIR) -> str:
  from ntm_jax.runs import compare
  result = compare.at_equal_sequences([os.path.join(results_dir, k) for k in keys])
  lines = [f"At {result['sequences']:,} training sequences per seed (median over seeds "
           "of an evaluation on fresh sequences of the training lengths):", "",
           "| run | model | params | bits | bit errors |", "| --- | --- | --- | --- | --- |"]
  for key, r in zip(keys, result["runs"]):
    params = "?" if r["param_count"] is None else f"{r['param_count']:,}"
    lines.append(f"| `{key}` | {r['model'].upper()} | {params} | "
                 f"{_num(r['median_eval_bits'])} | {_num(r['median_eval_bit_errors'])} |")
  return "\n".join(lines)


def _longest(run, key):
  values = run["summary"]["aggregate"][key]
  return values[list(values)[-1]]


def render_table(folder: str, results_dir: str = RESULTS_DIR) -> str:
  """One row per run under results/<folder>: how many seeds converged and
  generalised to the longest test length, and where the run came from."""
  runs = [load_run(f"{folder}/{n}", results_dir) for n in _run_names(folder, results_dir)]
  lines = ["| run | seeds | sequences per seed | converged (at the end) | longest test length: "
           "seeds under 1 bit error | median bits there | recorded |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  for run in runs:
    agg, lengths = run["summary"]["aggregate"], run["config"]["train"].get("test_lengths")
    lines.append(
        f"| {run['key'].split('/')[-1]} | {agg['seeds']} | {_sequences(run):,} | "
        f"{agg['converged']} ({agg.get('converged_at_end', '?')}) | L{lengths[-1]}: "
        f"{_longest(run, 'seeds_under_1_bit_error_by_length')} | "
        f"{_num(_longest(run, 'median_bits_by_length'), 3)} | {_recorded(run['record'])} |")
  return "\n".join(lines)


def _run_names(folder: str, results_dir: str) -> list:
  path = os.path.join(results_dir, folder)
  if not os.path.isdir(path):
    raise ValueError(f"RESULTS.md names {folder!r}, which is not under {results_dir}")
  return sorted(n for n in os.listdir(path)
                if os.path.isfile(os.path.join(path, n, "summary.json")))


def render_block(key: str, results_dir: str = RESULTS_DIR) -> str:
  if key.startswith("compare "):
    return render_compare(key.split()[1:], results_dir)
  if key.startswith("table "):
    return render_table(key.split()[1], results_dir)
  if key.startswith("failures "):
    from experiments.report_failures import render_failures
    return render_failures(key.split()[1:], results_dir)
  if os.path.isfile(os.path.join(results_dir, key, "summary.json")):
    return render_run(load_run(key, results_dir))
  return "\n\n".join(render_run(load_run(f"{key}/{n}", results_dir))
                      for n in _run_names(key, results_dir))


def render(text: str, results_dir: str = RESULTS_DIR) -> str:
  """`text` (RESULTS.md) with every report block re-rendered."""
  def block(match):
    return match.group(1) + render_block(match.group(2), results_dir) + "\n" + match.group(4)
  return _BLOCK.sub(block, text)


def stale_blocks(text: str, results_dir: str = RESULTS_DIR) -> list:
  """The keys of the blocks in `text` that differ from their rendering."""
  return [m.group(2) for m in _BLOCK.finditer(text)
          if m.group(3) != render_block(m.group(2), results_dir) + "\n"]


def main(argv) -> None:
  args = argv[1:]
  try:
    if args[:1] == ["--add"]:
      if len(args) not in (3, 4):
        raise ValueError("usage: --add RUN_DIR results/TASK/NAME [NOTE]")
      add(args[1], args[2], args[3] if len(args) == 4 else "")
      print(f"recorded {args[1]} as {args[2]}")
      return
    with open(RESULTS_MD) as f:
      text = f.read()
    if args == ["--check"]:
      stale = stale_blocks(text)
      if stale:
        sys.exit(f"error: RESULTS.md disagrees with results/ in {stale}; "
                 "run python -m experiments.report")
      print("RESULTS.md agrees with results/")
      return
    if args:
      raise ValueError(f"unexpected arguments {args}")
    rendered = render(text)
    with open(RESULTS_MD + ".tmp", "w") as f:
      f.write(rendered)
    os.replace(RESULTS_MD + ".tmp", RESULTS_MD)
    print(f"rendered {len(_BLOCK.findall(text))} blocks into RESULTS.md")
  except (ValueError, OSError, KeyError) as error:
    sys.exit(f"error: {error}")


if __name__ == "__main__":
  main(sys.argv)
