"""A task's first training batch is checked against its declared contract
(`ntm_jax.training.contract.check_first_batch`) before anything compiles:
every shipped task passes with its experiment's defaults; a broken task of
one's own is refused in one line saying what is wrong."""
import dataclasses

import jax
import jax.numpy as jnp
import pytest
from absl import flags
from absl.testing import flagsaver

from ntm_jax.config import ExperimentConfig, NTMConfig, TrainConfig
from ntm_jax.tasks import TASKS, CopyTask
from ntm_jax.training import contract
from conftest import load_experiment

EXPERIMENTS = ["copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort", "dyck"]
# Every training step of copy at length 5: 2 * 5 + 1 = 11 time steps of
# 3 bits + a delimiter in, 3 bits out.
FIVE = TrainConfig(min_length=5, max_length=5, batch_size=2)
MODEL = NTMConfig(input_size=4, output_size=3, controller_size=8, memory_rows=8,
                  memory_width=4)


def _refusal(task, config=FIVE, model=MODEL, name="my_mod:Broken") -> str:
  with pytest.raises(ValueError) as error:
    contract.check_first_batch(task, config, model, name=name)
  message = str(error.value)
  assert "\n" not in message and message.startswith("task my_mod:Broken ")
  return message


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_shipped_task_passes_with_its_experiment_s_defaults(name):
  from experiments import common
  options = getattr(load_experiment(name), "task_options", ())
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS([name])
    config = common.config_from_flags(name, options)
  contract.check_first_batch(config.make_task(), config.train, config.model, config.task)


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("batch_size", [1, 3])
def test_every_shipped_task_passes_at_a_small_length_and_any_batch(name, batch_size):
  task = TASKS[name]()
  smallest = task.min_length
  config = TrainConfig(min_length=smallest, max_length=smallest + 2, batch_size=batch_size,
                       curriculum_start=smallest)
  model = NTMConfig(input_size=task.input_size, output_size=task.output_size)
  contract.check_first_batch(task, config, model)
  contract.check_first_batch(task, config)  # without a model: the batch alone


def test_the_first_draw_is_training_s_first_step():
  from ntm_jax.training import draws
  config = TrainConfig(min_length=2, max_length=9, seed=4)
  _, length = contract.first_draw(config)
  assert length == int(draws.step_length(jnp.int32(0), config)) and 2 <= length <= 9
  _, fixed = contract.first_draw(FIVE)
  assert fixed == 5


# Broken tasks: each one thing wrong with a copy task of 3 bits.


@dataclasses.dataclass(frozen=True)
class TooFewSteps(CopyTask):
  """The issue's case: 8 time steps where sequence_steps(5) is 11."""

  def sample(self, rng, batch_size, length, max_length):
    inputs, targets, mask = super().sample(rng, batch_size, length, max_length)
    return inputs[:, :8], targets[:, :8], mask[:, :8]


@dataclasses.dataclass(frozen=True)
class WrongChannels(CopyTask):
  def sample(self, rng, batch_size, length, max_length):
    inputs, targets, mask = super().sample(rng, batch_size, length, max_length)
    return inputs, jnp.concatenate([targets, targets[..., :1]], -1), mask


@dataclasses.dataclass(frozen=True)
class NaNInputs(CopyTask):
  def sample(self, rng, batch_size, length, max_length):
    inputs, targets, mask = super().sample(rng, batch_size, length, max_length)
    return inputs.at[:, 0, 0].set(jnp.nan), targets, mask


@dataclasses.dataclass(frozen=True)
class Raises(CopyTask):
  def sample(self, rng, batch_size, length, max_length):
    return 1 / 0


@dataclasses.dataclass(frozen=True)
class BranchesOnTheLength(CopyTask):
  """Fine with a Python int; training's length is traced."""

  def sample(self, rng, batch_size, length, max_length):
    if length > 100:
      raise AssertionError("unreachable")
    return super().sample(rng, batch_size, length, max_length)


@dataclasses.dataclass(frozen=True)
class ScoresThePadding(CopyTask):
  """Scores every step of the padded batch, past sequence_steps(length)."""

  def sample(self, rng, batch_size, length, max_length):
    inputs, targets, mask = super().sample(rng, batch_size, length, max_length)
    return inputs, targets, jnp.ones_like(mask)


@dataclasses.dataclass(frozen=True)
class IntegerTargets(CopyTask):
  def sample(self, rng, batch_size, length, max_length):
    inputs, targets, mask = super().sample(rng, batch_size, length, max_length)
    return inputs, targets.astype(jnp.int32), mask


@dataclasses.dataclass(frozen=True)
class TwoThings(CopyTask):
  def sample(self, rng, batch_size, length, max_length):
    return super().sample(rng, batch_size, length, max_length)[:2]


@dataclasses.dataclass(frozen=True)
class ScalarMetrics(CopyTask):
  def sequence_metrics(self, logits, targets, mask):
    return {"bits": jnp.sum(logits), "bit_errors": jnp.sum(mask)}


def test_too_few_time_steps_are_refused():
  message = _refusal(TooFewSteps(bits=3))
  assert message == ("task my_mod:Broken sample(batch 2, length 5, max_length 5) gave inputs "
                     "of shape [2, 8, 4], not [2, sequence_steps(5) = 11, input_size 4]")


def test_a_wrong_channel_count_is_refused():
  message = _refusal(WrongChannels(bits=3))
  assert "targets of shape [2, 11, 4]" in message and "output_size 3" in message


def test_non_finite_values_are_refused():
  assert _refusal(NaNInputs(bits=3)) == (
      "task my_mod:Broken gave non-finite inputs (NaN or inf) in a batch of length 5")


def test_a_sampler_that_raises_is_one_line_naming_the_task_and_the_exception():
  assert _refusal(Raises(bits=3)) == (
      "task my_mod:Broken failed to sample a batch of length 5 with a traced length "
      "(training draws it inside the compiled step): ZeroDivisionError: division by zero")


def test_a_sampler_that_needs_a_concrete_length_is_refused():
  task = BranchesOnTheLength(bits=3)
  task.sample(jax.random.PRNGKey(0), 2, 5, 5)  # fine with a Python int
  message = _refusal(task)
  assert "with a traced length" in message and "TracerBoolConversionError" in message


def test_scoring_past_the_sequence_s_steps_is_refused():
  # Length 2 padded to 5 (a converged seed's longer range): the sequence
  # lives in the first 5 of the 11 steps, and training runs only those.
  config = TrainConfig(min_length=2, max_length=2, max_length_while_converged=5,
                       batch_size=2)
  contract.check_first_batch(CopyTask(bits=3), config, MODEL)  # the control
  assert _refusal(ScoresThePadding(bits=3), config=config) == (
      "task my_mod:Broken scores steps past sequence_steps(2) = 5 in a batch of length 2 "
      "(its mask is non-zero there), but training runs only those 5 steps")


def test_integer_targets_a_short_tuple_and_scalar_metrics_are_refused():
  assert "targets of dtype int32, not floating point" in _refusal(IntegerTargets(bits=3))
  assert _refusal(TwoThings(bits=3)).endswith(
      "sample must return (inputs, targets, mask), got tuple of 2")
  assert _refusal(ScalarMetrics(bits=3)) == (
      "task my_mod:Broken gave bits of shape [], not one number per sequence [2]")


def test_the_model_s_width_must_fit_the_task_s_metrics():
  # Targets of 3 channels scored against logits of 5: the sigmoid metrics
  # cannot broadcast them.
  wide = dataclasses.replace(MODEL, output_size=5)
  message = _refusal(CopyTask(bits=3), model=wide)
  assert "failed to score a batch of zero logits" in message


def test_the_default_name_is_the_import_path():
  with pytest.raises(ValueError, match=r"^task .*test_task_contract:Raises failed"):
    contract.check_first_batch(Raises(bits=3), FIVE)


def test_the_engine_refuses_a_broken_task_before_compiling():
  from ntm_jax.runs import engine
  config = ExperimentConfig(task=f"{__name__}:TooFewSteps", task_options=(("bits", 3),),
                            model=MODEL, train=FIVE)
  with pytest.raises(ValueError, match="gave inputs of shape"):
    engine.validate(config)


def test_the_worked_example_task_passes(monkeypatch):
  import os
  from conftest import ROOT
  monkeypatch.syspath_prepend(os.path.join(ROOT, "examples"))
  from reverse_copy import ReverseCopyTask
  task = ReverseCopyTask(bits=3)
  contract.check_first_batch(task, TrainConfig(min_length=1, max_length=5, batch_size=4), MODEL)
