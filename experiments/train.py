"""Train any task over many seeds at once: a registered one, or your own.

    python -m experiments.train --task copy --seeds 8
    PYTHONPATH=/path/to/yours python -m experiments.train --task my_tasks:ReverseCopy \
        --seeds 2 --steps 100 --eval_every 50 --max_length 5 --test_lengths 5,10

Your task is any class following `ntm_jax.tasks.Task` in a module importable
from PYTHONPATH (WORKSPACE.md, "Add a task", has a worked example). The
import path goes into the run's config.json, so `--resume`,
`experiments.inspect` and `experiments.compare` find it again from any
working directory with the module on PYTHONPATH.
"""
from absl import flags

from experiments import common, help_flags

flags.DEFINE_string("task", None, "A task name (copy, repeat_copy, associative_recall, "
                    "ngrams, priority_sort, dyck) or MODULE:CLASS of a task of your own.")
common.define_flags()
help_flags.list_shared_flags()  # --help lists every flag, exits 0

if __name__ == "__main__":
  common.main_for(None)
