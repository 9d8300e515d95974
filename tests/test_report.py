"""experiments.report: RESULTS.md's tables agree with the committed results/,
a changed summary is caught, and recording a run keeps what compare needs."""
import json
import os
import shutil

import pytest

from experiments import report
from ntm_jax.runs import compare


def test_results_md_agrees_with_the_committed_results():
  with open(report.RESULTS_MD) as f:
    text = f.read()
  assert report._BLOCK.search(text), "RESULTS.md has no report blocks"
  assert report.stale_blocks(text) == []


def _summary(errors, bits, diverged=None):
  """A summary.json of len(errors) seeds at test lengths 10 and 20."""
  diverged = diverged or [False] * len(errors)
  seeds = [{"seed": i, "diverged": d, "converged_step": 100,
            "bit_errors_by_length": {"10": e[0], "20": e[1]},
            "bits_by_length": {"10": b[0], "20": b[1]}}
           for i, (e, b, d) in enumerate(zip(errors, bits, diverged))]
  return {"seeds": seeds, "timing": {"wall_s": 12.4},
          "aggregate": {"seeds": len(errors), "converged": len(errors),
                        "converged_at_end": len(errors), "diverged": sum(diverged),
                        "param_count": 1234}}


def _recorded_run(root, key, summary, task="copy"):
  folder = os.path.join(root, key)
  os.makedirs(folder)
  config = {"task": task, "model_kind": "ntm", "train": {"seeds": len(summary["seeds"]),
                                                         "steps": 100, "batch_size": 4}}
  for name, data in (("summary.json", summary), ("config.json", config),
                     ("record.json", {"note": "", "stages": [
                         {"command": "python -m experiments.copy --seeds 4", "commit": "abc1234",
                          "dirty": False, "finished": "2026-12-03", "steps": 100,
                          "wall_s": 12, "xla_flags": ""}]})):
    with open(os.path.join(folder, name), "w") as f:
      json.dump(data, f)


def test_medians_take_the_mean_of_the_middle_two_and_skip_diverged_seeds(tmp_path):
  # Healthy seeds' errors at length 10: 0, 1, 3, 10 -> median (1 + 3) / 2 = 2;
  # the diverged seed's 500 counts nowhere. Under 1 bit at 20: seeds 0 and 1.
  summary = _summary(errors=[(0, 0), (1, 0.5), (3, 4), (10, 12), (500, 500)],
                     bits=[(1, 2), (2, 3), (4, 5), (9, 9), (1e9, 1e9)],
                     diverged=[False, False, False, False, True])
  _recorded_run(str(tmp_path), "copy/a", summary)
  text = report.render_block("copy/a", str(tmp_path))
  rows = {line.split(" | ")[0].lstrip("| "): line.strip(" |").split(" | ")[1:]
          for line in text.splitlines() if line.startswith("| ")}
  assert rows["median bit errors"] == ["2.00", "2.25"]
  assert rows["seeds under 1 bit error"] == ["1/4", "2/4"]
  assert rows["median bits"] == ["3.00", "4.00"]
  assert "`python -m experiments.copy --seeds 4`" in text
  assert "2026-12-03, abc1234, 12 s" in text


def test_a_changed_summary_makes_its_block_stale(tmp_path):
  summary = _summary(errors=[(0, 0), (2, 2)], bits=[(1, 1), (3, 3)])
  _recorded_run(str(tmp_path), "copy/a", summary)
  text = ("intro\n<!-- report: copy -->\n" + report.render_block("copy", str(tmp_path))
          + "\n<!-- /report -->\nprose\n")
  assert report.stale_blocks(text, str(tmp_path)) == []
  assert report.render(text, str(tmp_path)) == text
  summary["seeds"][1]["bit_errors_by_length"]["20"] = 0.5
  with open(tmp_path / "copy" / "a" / "summary.json", "w") as f:
    json.dump(summary, f)
  assert report.stale_blocks(text, str(tmp_path)) == ["copy"]
  fixed = report.render(text, str(tmp_path))
  assert fixed.startswith("intro\n") and fixed.endswith("\nprose\n")
  assert "| median bit errors | 1.00 | 0.25 |" in fixed


def test_dyck_reports_accuracy(tmp_path):
  # One answer per word: 0.02 errors per word is 98% accuracy.
  _recorded_run(str(tmp_path), "dyck/a", _summary(errors=[(0.0, 0.02), (0.0, 0.04)],
                                                  bits=[(0, 0), (0, 0)]), task="dyck")
  text = report.render_block("dyck/a", str(tmp_path))
  assert "| median accuracy | 100.0% | 97.0% |" in text
  assert "| worst seed's accuracy | 100.0% | 96.0% |" in text


def test_an_unknown_block_is_one_clear_error(tmp_path):
  with pytest.raises(ValueError, match="not under"):
    report.render_block("nope", str(tmp_path))


def test_recording_a_run_keeps_its_evaluations_for_compare(tiny_run_dir, tmp_path):
  dest = str(tmp_path / "copy" / "tiny")
  record = report.add(tiny_run_dir, dest, note="a test")
  assert sorted(os.listdir(dest)) == ["config.json", "metrics.jsonl", "record.json",
                                      "summary.json"]
  (stage,) = record["stages"]
  assert stage["steps"] == 200 and stage["command"].startswith("python")
  with open(os.path.join(dest, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [50, 100, 150, 200]  # one per evaluation
  assert all(set(r) >= {"step", "eval_loss", "eval_bit_errors"} for r in rows)
  assert compare.eval_curve(dest) == compare.eval_curve(tiny_run_dir)


def test_a_resumed_run_records_each_stage(tiny_run_dir, tmp_path):
  run_dir = str(tmp_path / "run")
  shutil.copytree(tiny_run_dir, run_dir)
  with open(os.path.join(run_dir, "config.json")) as f:
    config = json.load(f)
  first = dict(config["provenance"], argv=["/x/experiments/copy.py", "--steps", "100"])
  config["provenance"]["earlier"] = [first]
  with open(os.path.join(run_dir, "config.json"), "w") as f:
    json.dump(config, f)
  dest = str(tmp_path / "copy" / "tiny")
  os.makedirs(dest)
  with open(os.path.join(dest, "record.json"), "w") as f:  # the first stage, recorded then
    json.dump({"note": "kept", "stages": [
        {"command": "python -m experiments.copy --steps 100", "finished": "2026-12-01",
         "steps": 100, "wall_s": 5}]}, f)
  record = report.add(run_dir, dest)
  assert record["note"] == "kept"
  assert [(s["command"].split(" --")[0], s["steps"]) for s in record["stages"]] == [
      ("python -m experiments.copy", 100), (record["stages"][1]["command"].split(" --")[0], 200)]
  assert record["stages"][0]["wall_s"] == 5 and record["stages"][0]["finished"] == "2026-12-01"
  assert report._recorded(record).endswith(f"{5 + record['stages'][1]['wall_s']:,} s")


def test_recording_a_directory_that_is_not_a_run_is_refused(tmp_path):
  with pytest.raises(ValueError, match="not a finished run directory"):
    report.add(str(tmp_path), str(tmp_path / "dest"))
  assert not os.path.exists(tmp_path / "dest")


def _failure_record(failed, bit_errors, early, causes):
  return {"failed": failed, "bit_errors": bit_errors, "causes": dict(zip(
      ("overwritten", "misplaced", "blurred"), causes)),
      "first_step_third": {"early": early, "middle": 0, "late": failed - early}}


def test_the_failures_table_counts_seeds_and_sequences(tmp_path):
  import json
  from experiments import report_failures
  for name, under in (("copy/default", 2), ("copy/factors/b", 1)):
    summary = {"aggregate": {"seeds_under_1_bit_error_by_length": {"10": 3, "120": under}}}
    os.makedirs(tmp_path / name)
    with open(tmp_path / name / "summary.json", "w") as f:
      json.dump(summary, f)
  seeds = [_failure_record(0, 0.0, 0, (0, 0, 0)), _failure_record(1, 0.9, 1, (0, 1, 0)),
           _failure_record(10, 8.0, 6, (2, 7, 1))]
  for name in ("copy/default", "copy/factors/b"):
    with open(tmp_path / name / "failures_L120.json", "w") as f:
      json.dump({"length": 120, "sequences": 100, "memory_size": 128, "seeds": seeds}, f)
  os.makedirs(tmp_path / "copy/factors/no_failures_file")
  text = report_failures.render_failures(["copy/default", "copy/factors"], str(tmp_path))
  rows = [line for line in text.splitlines() if line.startswith("| default") or
          line.startswith("| b ")]
  # 2 of 3 seeds under 1 bit error; 1 fails none; the median seed fails 1
  # sequence of 100; 11 failed, 7 early; causes 2 / 8 / 1.
  assert rows == ["| default | 2/3 | 2/3 | 1 | 1.00% | 11 | 7 | 2 / 8 / 1 |",
                  "| b | 1/3 | 2/3 | 1 | 1.00% | 11 | 7 | 2 / 8 / 1 |"]
  with open(tmp_path / "copy/factors/b/failures_L120.json", "w") as f:
    json.dump({"length": 120, "sequences": 50, "memory_size": 128, "seeds": seeds}, f)
  with pytest.raises(ValueError, match="other sequences"):
    report_failures.render_failures(["copy/default", "copy/factors"], str(tmp_path))
