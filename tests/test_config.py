"""The configs (ntm_jax/config.py): their JSON, the command-line flags built
from their fields (experiments/common.py), and the modules that must start
without jax."""
import dataclasses
import json

import pytest
from absl import flags
from absl.testing import flagsaver

from experiments import common
from ntm_jax.config import ExperimentConfig, LSTMConfig, NTMConfig, TrainConfig

from conftest import TINY_EXPERIMENT, load_experiment, run_python

FLAGS = flags.FLAGS


# JSON -------------------------------------------------------------------------


def _json_trip(config):
  """config -> to_json -> JSON text -> from_json, as config.json does it."""
  return ExperimentConfig.from_json(json.loads(json.dumps(config.to_json())))


def test_to_json_then_from_json_gives_the_same_config():
  assert _json_trip(TINY_EXPERIMENT) == TINY_EXPERIMENT
  lstm = dataclasses.replace(
      TINY_EXPERIMENT, model=LSTMConfig(input_size=4, output_size=3, size=8, layers=2),
      train=dataclasses.replace(TINY_EXPERIMENT.train, test_memory_size=None,
                                lr_schedule="cosine"),
      task_options=(("bits", 3), ("max_repeats", 2)), plots=False)
  assert _json_trip(lstm) == lstm


def test_to_json_is_plain_json_with_the_model_kind():
  data = TINY_EXPERIMENT.to_json()
  assert data["model_kind"] == "ntm" and data["task"] == "copy"
  assert data["task_options"] == {"bits": 3}
  assert data["model"]["memory_rows"] == 8 and data["train"]["steps"] == 200
  assert json.loads(json.dumps(data))["train"]["test_lengths"] == [2, 6]


def test_keys_added_since_a_run_was_written_take_their_defaults():
  data = TINY_EXPERIMENT.to_json()
  for key in ("task_options", "checkpoint_every", "plots"):
    del data[key]
  del data["train"]["lr_schedule"]
  del data["model"]["head_clip"]
  config = ExperimentConfig.from_json(data)
  assert config.task_options == () and config.checkpoint_every == 1000 and config.plots
  assert config.train.lr_schedule == "constant" and config.model.head_clip == 20.0


def _from_json_error(data):
  with pytest.raises(ValueError) as error:
    ExperimentConfig.from_json(data, where="run/config.json")
  message = str(error.value)
  assert "\n" not in message and message.startswith("run/config.json"), message
  return message


def test_missing_or_unknown_keys_are_one_line_errors_naming_the_file():
  good = TINY_EXPERIMENT.to_json()
  without_train = {k: v for k, v in good.items() if k != "train"}
  assert _from_json_error(without_train) == "run/config.json: missing keys ['train']"
  assert "unknown model_kind 'gru'" in _from_json_error({**good, "model_kind": "gru"})
  assert _from_json_error({**good, "train": {**good["train"], "stepz": 3}}) == (
      "run/config.json: unknown TrainConfig keys ['stepz']")
  assert _from_json_error({**good, "model": {**good["model"], "rows": 3}}) == (
      "run/config.json: unknown NTMConfig keys ['rows']")
  model = {k: v for k, v in good["model"].items() if k != "input_size"}
  assert _from_json_error({**good, "model": model}) == (
      "run/config.json: NTMConfig is missing ['input_size']")
  assert "must be a JSON object" in _from_json_error({**good, "train": [1, 2]})
  assert "not a run config" in _from_json_error([good])


# Flags from the config fields ---------------------------------------------------


def _flagged_fields():
  """(flag name, field) of every config field declared with help text and a
  flag, read off the dataclasses directly."""
  out = []
  for cls in (NTMConfig, LSTMConfig, TrainConfig, ExperimentConfig):
    for field in dataclasses.fields(cls):
      if "help" in field.metadata and field.metadata["flag"] != "":
        out.append((field.metadata["flag"] or field.name, field))
  return out


def test_every_flagged_field_is_a_flag_with_the_field_s_help_text():
  load_experiment("train")  # no defaults of its own
  fields = _flagged_fields()
  assert len(fields) > 30
  names = [name for name, _ in fields]
  assert len(set(names)) == len(names)  # no two fields share a flag
  # Renamed flags keep their fields' help.
  assert {"lr", "activation", "lstm_size", "lstm_layers", "lstm_remat"} <= set(names)
  for name, field in fields:
    assert FLAGS[name].help == field.metadata["help"], name
    default = field.default
    if isinstance(default, tuple):
      default = [str(v) for v in default]
    assert FLAGS[name].default == default, name


def test_an_experiment_s_defaults_override_the_fields_defaults():
  load_experiment("repeat_copy")
  assert FLAGS["max_length"].default == 10 != TrainConfig.max_length
  assert FLAGS["steps"].default == 6_000 != TrainConfig.steps
  assert FLAGS["seeds"].default == 8 != TrainConfig.seeds
  assert FLAGS["test_lengths"].default == ["5", "10", "15", "20"]
  assert FLAGS["activation"].default == "relu" != NTMConfig.controller_activation
  # Settings it leaves alone keep the field's default.
  assert FLAGS["memory_rows"].default == NTMConfig.memory_rows == 128
  assert FLAGS["clip_norm"].default == TrainConfig.clip_norm


def _config_from(module, argv, task_options=()):
  load_experiment(module)
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS([module] + argv)
    return common.config_from_flags(module, task_options)


def test_config_from_flags_builds_the_config_one_would_write_by_hand():
  got = _config_from("copy", ["--seeds=3", "--lr=0.01", "--lr_schedule=cosine",
                              "--memory_rows=64", "--test_lengths=10,20",
                              "--checkpoint_every=500", "--noplots"])
  # CopyTask() has 8 bits: 9 inputs (with the delimiter), 8 outputs; the
  # copy experiment's own defaults: tanh, 20,000 steps, batch 8, a tenth of
  # the lr while converged, evaluations on 128 rows.
  assert got == ExperimentConfig(
      task="copy",
      model=NTMConfig(input_size=9, output_size=8, controller_activation="tanh",
                      memory_rows=64),
      train=TrainConfig(seeds=3, steps=20_000, learning_rate=0.01, lr_schedule="cosine",
                        test_lengths=(10, 20), batch_size=8, lr_after_converged=0.1,
                        eval_memory_size=128, restore_best_on_collapse=True,
                        test_batch=128),
      checkpoint_every=500, plots=False)
  lstm = _config_from("copy", ["--model=lstm", "--lstm_size=32", "--lstm_layers=2"])
  assert lstm.model == LSTMConfig(input_size=9, output_size=8, size=32, layers=2)


def test_a_bad_flag_value_is_a_one_line_value_error():
  with pytest.raises(ValueError, match="^--test_lengths must be integers, got 1,x$"):
    _config_from("copy", ["--test_lengths=1,x"])
  with pytest.raises(ValueError, match="^unknown --model 'gru'"):
    _config_from("copy", ["--model=gru"])


def test_a_list_valued_sweep_parameter_reaches_a_tuple_setting():
  # A sweep value [24, 32, 48] is formatted by the runner (and by W&B's agent)
  # as "--train_memory_sizes=[24, 32, 48]"; the flag takes that form too.
  from sweeps import run as sweeps_run
  sweep = {"program": "experiments.copy", "method": "grid",
           "command": ["${interpreter}", "-m", "${program}", "${args}"],
           "parameters": {"train_memory_sizes": {"values": [[24, 32, 48], [32]]},
                          "test_lengths": {"value": [7]}}}
  first = sweeps_run.trials(sweep, count=8, log=lambda _: None)[0]
  argv = sweeps_run.command(sweep, first)[3:]
  assert sorted(argv) == ["--test_lengths=[7]", "--train_memory_sizes=[24, 32, 48]"]
  got = _config_from("copy", argv)
  assert got.train.train_memory_sizes == (24, 32, 48)
  assert got.train.test_lengths == (7,)
  assert _config_from("copy", ["--train_memory_sizes=[]"]).train.train_memory_sizes == ()
  with pytest.raises(ValueError, match=r"^--test_lengths must be integers, got \[1,x\]$"):
    _config_from("copy", ["--test_lengths=[1,x]"])


# Modules that start without jax --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("module", ["ntm_jax.config", "ntm_jax.runs.wandb_logger",
                                    "sweeps.run"])
def test_importing_imports_no_jax(module):
  result = run_python("-c", f"import sys, {module}; print('jax' in sys.modules)")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == "False"
