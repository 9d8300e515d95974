"""Weights & Biases backend for the engine's logging interface.

Never blocks a run: with no API key "online" falls back to "offline"; an
init that fails or times out falls back to offline, then to no logging, each
announced in one line. `wandb` is imported only when a logger starts.
"""
import netrc
import os
from typing import Callable, Optional

from ntm_jax.experiment import sweep_metrics

MODES = ("off", "offline", "online")


def default_mode() -> str:
  """--wandb's default: WANDB_MODE if set (disabled -> off), else off."""
  mode = os.environ.get("WANDB_MODE", "").strip().lower()
  return {"disabled": "off", "dryrun": "offline", "offline": "offline",
          "online": "online", "run": "online"}.get(mode, "off")


def _has_api_key() -> bool:
  if os.environ.get("WANDB_API_KEY"):
    return True
  try:
    return netrc.netrc().authenticators("api.wandb.ai") is not None
  except (OSError, netrc.NetrcParseError):
    return False


class WandbLogger:
  """Logs config, per-chunk aggregates and per-seed metrics, and the summary."""

  def __init__(self, mode: str = "offline", project: Optional[str] = None,
               entity: Optional[str] = None, name: Optional[str] = None,
               log: Callable[[str], None] = print, init_timeout: float = 30.0):
    if mode not in MODES:
      raise ValueError(f"unknown W&B mode {mode!r}; choose one of {MODES}")
    self.mode = mode
    self.project = project or os.environ.get("WANDB_PROJECT", "ntm_jax")
    self.entity = entity or os.environ.get("WANDB_ENTITY")
    self.name = name
    self.log = log
    self.init_timeout = init_timeout
    self.run = None
    self.base_seed = 0
    self.out_dir = "."

  def start(self, config: dict, out_dir: str) -> None:
    self.base_seed = config.get("train", {}).get("seed", 0)
    self.out_dir = out_dir
    if self.mode == "off":
      return
    import wandb
    mode = self.mode
    if mode == "online" and not _has_api_key():
      self.log("W&B: no API key (WANDB_API_KEY or `wandb login`): logging offline instead")
      mode = "offline"
    settings = wandb.Settings(silent=True, console="off", init_timeout=self.init_timeout,
                              x_disable_stats=True, disable_git=True)
    for attempt in (mode, "offline") if mode == "online" else (mode,):
      try:
        self.run = wandb.init(project=self.project, entity=self.entity, name=self.name,
                              dir=os.path.abspath(out_dir), config=config, mode=attempt,
                              settings=settings, reinit="create_new")
        mode = attempt
        break
      except Exception as error:  # no network, server down, bad entity...
        self.log(f"W&B: {attempt} init failed ({type(error).__name__}: {error}); "
                 + ("trying offline" if attempt == "online" else "not logging to W&B"))
    if self.run is not None and mode == "offline":
      self.log(f"W&B: logging offline; upload later with: wandb sync "
               f"{os.path.dirname(self.run.dir)}")

  def log_chunk(self, step: int, aggregate: dict, per_seed: dict) -> None:
    if self.run is None:
      return
    data = dict(aggregate)
    for name, values in per_seed.items():
      for i, value in enumerate(values):
        if value is not None:
          data[f"seed_{self.base_seed + i}/{name}"] = value
    self.run.log(data, step=step)

  def finish(self, summary: dict) -> None:
    if self.run is None:
      return
    import wandb
    for key, value in sweep_metrics(summary).items():
      self.run.summary[key] = value
    lengths = list(summary["aggregate"]["median_bit_errors_by_length"])
    table = wandb.Table(columns=["seed", "converged_step", "diverged"]
                        + [f"bit_errors_L{n}" for n in lengths])
    for seed in summary["seeds"]:
      table.add_data(seed["seed"], seed["converged_step"], seed["diverged"],
                     *[seed["bit_errors_by_length"][n] for n in lengths])
    images = {f"plots/{os.path.splitext(os.path.basename(p))[0]}":
              wandb.Image(os.path.join(self.out_dir, p)) for p in summary.get("plots", [])}
    self.run.log({"generalisation": table, **images})
    self.run.finish()
    self.run = None
