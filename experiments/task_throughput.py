"""Each task's training throughput at its experiment's defaults, for
`python -m experiments.benchmark --tasks ...`, so a user can plan a run.

For a task and a model kind, the configuration is the one `python -m
experiments.<task> --model <kind>` trains by default (`default_config`: that
experiment's own flag defaults, read in a subprocess by `default_configs`,
since the benchmark's flags share names with the experiments'), with
`--seeds` seeds on all devices, laid out as the engine lays them out. The
engine's compiled chunk (`ntm_jax.runs.chunks.make_chunk`) runs once to warm
up, then `chunks` times under the clock (`timed_chunks`). A chunk ends with
one evaluation, as a run's does every `eval_every` steps.

Counted (`measure`): training sequences of the real seeds only; useful time
steps, each sequence's own `task.sequence_steps(length)` at the length its
step drew (`drawn_lengths`, the engine's rule: the steps its time loop
runs), beside the padded ones (`sequence_steps` of the longest training
length); and the hours one seed needs for a million training sequences at
that seed count. Repeat copy's `sequence_steps` pads the output phase to
`max_repeats` copies: the repeat count each sequence draws inside the step
is not reproduced here, so its useful time steps count that padding.

    python -m experiments.task_throughput copy:ntm dyck:lstm   # the configs, as JSON lines
"""
import json
import os
import subprocess
import sys
import time

from ntm_jax import config as config_lib

# Tasks with an experiment module of their defaults (tests check TASKS agrees).
TASK_NAMES = ("copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort", "dyck")
MODEL_KINDS = tuple(config_lib.MODEL_CONFIGS)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def check_names(tasks, models) -> None:
  """ValueError (one line) for a task or model kind this mode cannot build;
  needs no jax."""
  for flag, names, known in (("--tasks", tasks, TASK_NAMES), ("--models", models, MODEL_KINDS)):
    unknown = [n for n in names if n not in known]
    if unknown:
      raise ValueError(f"{flag}: unknown {', '.join(map(repr, unknown))}; choose from "
                       f"{', '.join(known)}")
  if not models:
    raise ValueError("--models must name at least one of " + ", ".join(MODEL_KINDS))


def default_config(task: str, kind: str) -> config_lib.ExperimentConfig:
  """The ExperimentConfig `python -m experiments.<task> --model <kind>` trains
  (its flag defaults). Replaces the flags absl's FLAGS holds here by that
  experiment's (`sweeps.experiment_flags.load_experiment`)."""
  from absl import flags
  from absl.testing import flagsaver
  from experiments import common
  from sweeps.experiment_flags import load_experiment
  options = getattr(load_experiment(task), "task_options", ())
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS([task, f"--model={kind}"])
    return common.config_from_flags(task, options)


def default_configs(pairs) -> list:
  """default_config of every (task, kind) in `pairs`, read in one subprocess
  (this process's flags stay as they are); ValueError (one line) if it fails."""
  command = [sys.executable, "-m", "experiments.task_throughput"]
  command += [f"{task}:{kind}" for task, kind in pairs]
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
  if done.returncode != 0:
    last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    raise ValueError(f"reading the experiments' defaults failed: {last}")
  return [config_lib.ExperimentConfig.from_json(json.loads(line), "experiment defaults")
          for line in done.stdout.splitlines() if line.strip()]


def drawn_lengths(train_config, start: int, steps: int, converged):
  """[steps, seeds] training lengths of steps start .. start + steps - 1, as
  `training.train_step` draws them: the step's one length, or with
  max_length_while_converged the longer of its paired draw for a seed
  converged at the chunk's start (`converged`: [seeds] bool)."""
  import jax
  import numpy as np
  from ntm_jax.training.draws import paired_step_lengths, step_length
  numbers = start + np.arange(steps, dtype=np.int32)
  converged = np.asarray(converged, bool)
  if not train_config.max_length_while_converged:
    drawn = np.asarray(jax.vmap(lambda s: step_length(s, train_config))(numbers))
    return np.repeat(drawn[:, None], converged.size, axis=1)
  short, longer = (np.asarray(x) for x in
                   jax.vmap(lambda s: paired_step_lengths(s, train_config))(numbers))
  return np.where(converged[None, :], longer[:, None], short[:, None])


def timed_chunks(model_config, train_config, task, mesh, padded_seeds: int, chunks: int):
  """Compiles the engine's chunk of train_config.eval_every steps for
  `padded_seeds` fresh seeds on `mesh`, runs it once to warm up, then
  `chunks` times. Returns (compile seconds, [(first step, seconds,
  converged [padded_seeds] at its start)] per timed chunk)."""
  import jax
  import numpy as np
  from ntm_jax import training
  from ntm_jax.runs.chunks import make_chunk
  from ntm_jax.training import distributed
  steps = train_config.eval_every
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
  states = distributed.put_seeds(
      training.init_states(model_config, train_config, padded_seeds), sharding)
  began = time.perf_counter()
  compiled = make_chunk(model_config, train_config, task, mesh).lower(
      states, np.int32(0)).compile()
  compile_s = time.perf_counter() - began
  states = jax.block_until_ready(compiled(states, np.int32(0)))[0]  # warm-up
  timed = []
  for k in range(1, chunks + 1):
    converged = np.asarray(jax.device_get(states.converged_step)) >= 0
    began = time.perf_counter()
    states = jax.block_until_ready(compiled(states, np.int32(k * steps)))[0]
    timed.append((k * steps, time.perf_counter() - began, converged))
  return compile_s, timed


def prepare(config, seeds: int, steps: int, chunks: int) -> tuple:
  """(config at `seeds` seeds, chunks of `steps` steps, its task, mesh,
  padded seed count) on all devices, validated and checked to fit as the
  engine checks a run; ValueError (one line) before anything compiles."""
  import dataclasses
  from ntm_jax import training
  from ntm_jax.runs.plan import lay_out_seeds
  from ntm_jax.runs.validation import validate
  config = dataclasses.replace(config, train=dataclasses.replace(
      config.train, seeds=seeds, steps=steps * (chunks + 1), eval_every=steps))
  task = config.make_task()
  validate(config, task)
  mesh, padded_seeds = lay_out_seeds(config, None)
  training.check_fits(config, mesh.devices.flat, task)
  return config, task, mesh, padded_seeds


def measure(config, seeds: int, steps: int, chunks: int) -> dict:
  """One row: `config`'s training throughput at `seeds` seeds on all devices,
  over `chunks` timed chunks of `steps` steps."""
  import jax
  import numpy as np
  from ntm_jax import models
  from ntm_jax.training.draws import padded_length
  config, task, mesh, padded_seeds = prepare(config, seeds, steps, chunks)
  train, batch = config.train, config.train.batch_size
  compile_s, timed = timed_chunks(config.model, train, task, mesh, padded_seeds, chunks)
  total = sum(seconds for _, seconds, _ in timed)
  useful = 0
  for start, _, converged in timed:
    lengths, counts = np.unique(drawn_lengths(train, start, steps, converged[:seeds]),
                                return_counts=True)
    useful += batch * sum(int(c) * task.sequence_steps(int(l)) for l, c in zip(lengths, counts))
  sequences = chunks * steps * seeds * batch
  params = models.param_count(models.init(jax.random.PRNGKey(0), config.model))
  row = {"task": config.task, "model": config.model_kind, "params": params, "seeds": seeds,
         "padded_seeds": padded_seeds, "devices": mesh.size, "batch_per_seed": batch,
         "steps_per_chunk": steps, "chunks": chunks, "compile_s": compile_s,
         "chunk_s": float(np.median([seconds for _, seconds, _ in timed])),
         "steps_per_s": chunks * steps / total, "sequences_per_s": sequences / total,
         "sequences_per_s_per_seed": sequences / seeds / total,
         "useful_time_steps_per_s": useful / total,
         "padded_time_steps_per_s": sequences * task.sequence_steps(padded_length(train)) / total}
  row["hours_per_1m_sequences_per_seed"] = 1e6 / row["sequences_per_s_per_seed"] / 3600
  return row


COLUMNS = (("task", "task", "{}"), ("model", "model", "{}"), ("params", "params", "{:,}"),
           ("seeds", "seeds", "{}"), ("batch/seed", "batch_per_seed", "{}"),
           ("compile s", "compile_s", "{:.1f}"), ("steps/s", "steps_per_s", "{:.2f}"),
           ("seq/s", "sequences_per_s", "{:,.0f}"),
           ("seq/s/seed", "sequences_per_s_per_seed", "{:,.1f}"),
           ("useful T/s", "useful_time_steps_per_s", "{:,.0f}"),
           ("h/1M seq/seed", "hours_per_1m_sequences_per_seed", "{:.2f}"))


def format_table(rows) -> str:
  """The rows as one aligned table, with a line saying what is counted."""
  cells = [[title for title, _, _ in COLUMNS]]
  cells += [[form.format(row[key]) for _, key, form in COLUMNS] for row in rows]
  widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
  lines = ["  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in
                     enumerate(zip(line, widths))) for line in cells]
  notes = [
      "Each experiment's default configuration, on all devices; seq/s counts the training "
      "sequences of all seeds, useful T/s each sequence's own time steps "
      "(task.sequence_steps at its drawn length, what its time loop runs); h/1M seq/seed: "
      "hours for one seed's million training sequences at that seed count (each chunk's "
      "evaluation included)."]
  if any(row["task"] == "repeat_copy" for row in rows):
    notes.append("repeat_copy: sequence_steps(length) pads the output to max_repeats copies; "
                 "the repeat count each sequence drew is not reproduced, so its useful T/s "
                 "counts that padding.")
  return "\n".join(lines + notes)


if __name__ == "__main__":  # default_configs' subprocess: a config per TASK:KIND argument
  for pair in sys.argv[1:]:
    print(json.dumps(default_config(*pair.split(":")).to_json()), flush=True)
