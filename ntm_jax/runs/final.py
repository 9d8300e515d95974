"""The end of a run: every seed's best parameters tested at the test lengths
(`test_best_params`) and summary.json (`finish_run`)."""
import functools
import os
import time

import jax
import jax.numpy as jnp

from ntm_jax import models
from ntm_jax import training
import ntm_jax.runs.faults as faults
import ntm_jax.runs.rundir as rundir
import ntm_jax.runs.seed_statistics as seed_statistics
import ntm_jax.runs.summary as summary_lib
from ntm_jax.runs.loop import Clock
from ntm_jax.runs.plan import RunPlan
from ntm_jax.runs.start import Position
from ntm_jax.training import distributed


def test_best_params(plan: RunPlan, states) -> dict:
  """{"main": results, variant name: results} of the task and its
  `test_variants`, each {name: [seeds, test lengths]} (`training.evaluate_lengths`)
  on every real seed's best parameters; seed i's sequences come from
  PRNGKey(seed + 10_000 + i)."""
  config, t = plan.config, plan.config.train
  test_keys = jax.vmap(jax.random.PRNGKey)(t.seed + 10_000 + jnp.arange(plan.padded_seeds))
  test_keys = distributed.put_seeds(test_keys, plan.seed_sharding)
  memory_size = models.memory_size_for(config.model, t.test_memory_size)
  results = {}
  variants = getattr(plan.task, "test_variants", dict)()
  for name, test_task in [("main", plan.task)] + list(variants.items()):
    test = training.make_seed_parallel(functools.partial(
        training.evaluate_lengths, task=test_task, model_config=config.model,
        lengths=t.test_lengths, batch_size=t.test_batch, memory_size=memory_size), plan.mesh,
        model_config=config.model)
    with faults.out_of_memory_ends_the_run(f"testing the best parameters ({name})"):
      tested = distributed.gather_seeds(test(states.best_params, test_keys))
    results[name] = {key: value[:t.seeds] for key, value in tested.items()}
  return results


def finish_run(plan: RunPlan, start_step: int, at: Position, clock: Clock,
               metrics_gaps=()) -> dict:
  """Tests the trained seeds, measures their strategy statistics (a task's
  `strategy_statistics`, per seed under "strategy"), writes summary.json, tells the loggers, prints
  the summary table; returns the summary.

  metrics_gaps: [first, last] steps metrics.jsonl lacks (`rundir.MetricsFile`
  gaps), recorded as summary.json's "metrics_gaps" (absent when none)."""
  config = plan.config
  test_began = time.perf_counter()
  results = test_best_params(plan, at.states)
  test_s = time.perf_counter() - test_began
  statistics, strategy_s = None, 0.0
  if hasattr(plan.task, "strategy_statistics"):
    strategy_began = time.perf_counter()
    statistics = seed_statistics.seed_statistics(
        config, distributed.gather_seeds(at.states.best_params), plan.task)
    strategy_s = time.perf_counter() - strategy_began
  # What the summary needs, gathered from every host. Of the optimizer state
  # only the skipped-step counts (with skip_spikes_while_converged) reach it.
  states = at.states
  counts = (states.opt_state._replace(inner=None)
            if hasattr(states.opt_state, "skipped") else None)
  host_states = distributed.gather_seeds(states.replace(
      opt_state=counts, best_params=None, average_params=None, best_opt_state=None))
  wall_s = time.perf_counter() - plan.wall_start
  timing = {"wall_s": wall_s, "compile_s": clock.compile_s, "train_s": clock.train_s,
            "test_s": test_s, "strategy_s": strategy_s, "steps_run": at.step - start_step,
            "outside_train_fraction": 1.0 - (clock.compile_s + clock.train_s) / wall_s,
            "devices": plan.mesh.size, "backend": jax.default_backend()}
  param_count = models.param_count(jax.tree_util.tree_map(lambda x: x[0], host_states.params))
  summary = summary_lib.summarize(config, host_states, results, timing, param_count,
                                  training.converge_metric(plan.task))
  seed_statistics.add_to_summary(summary, statistics)
  if metrics_gaps:
    summary["metrics_gaps"] = [list(gap) for gap in metrics_gaps]
  if plan.main:
    rundir.write_json(os.path.join(plan.out_dir, "summary.json"), summary)
  plan.loggers.finish(summary)
  plan.log(summary_lib.format_summary(summary))
  return summary
