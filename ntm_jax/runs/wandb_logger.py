"""Weights & Biases backend for the engine's logging interface.

Never blocks or fails a run. "online" with no credentials, or with a W&B
server that gives no HTTP answer within `Timeouts.connect`, or whose online
init does not finish within what is left of `Timeouts.online_budget` (7 s
from the start), falls back to "offline"; an offline init that fails too means no W&B
for this run. Each fallback is announced in one line.
`wandb` is imported only when a logger starts, so `import ntm_jax` stays light.
"""
import dataclasses
import os
import threading
import time
from typing import Callable, Optional
from urllib.parse import urlsplit

from ntm_jax.runs.summary import sweep_metrics

MODES = ("off", "offline", "online")
DEFAULT_BASE_URL = "https://api.wandb.ai"


def default_mode() -> str:
  """--wandb's default: WANDB_MODE if set (disabled -> off), else off."""
  mode = os.environ.get("WANDB_MODE", "").strip().lower()
  return {"disabled": "off", "dryrun": "offline", "offline": "offline",
          "online": "online", "run": "online"}.get(mode, "off")


def _base_url() -> str:
  return os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def _has_credentials(base_url: str) -> bool:
  """Whether wandb.init would find credentials without prompting."""
  if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
    return True
  try:  # wandb's own lookup: env vars, the .netrc ($NETRC) entry for this host
    from wandb.sdk.lib import wbauth
    return wbauth.authenticate_session(host=base_url, source="ntm_jax", prompt=False,
                                       update_session=False) is not None
  except Exception:  # a wandb without this private API: read the .netrc ourselves
    import netrc
    try:
      path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
      return netrc.netrc(path).authenticators(urlsplit(base_url).netloc) is not None
    except (OSError, netrc.NetrcParseError):
      return False


def _unreachable(base_url: str, timeout: float) -> Optional[str]:
  """Why the W&B server gives no HTTP answer within `timeout`, or None.

  A TCP connect is not enough: a server (or a firewall, or a stuck proxy)
  that accepts connections and never replies would pass it and then hold
  wandb.init until its own, much longer, timeout. So this sends a HEAD
  request and waits for any status line (any status counts as an answer).
  Runs in a thread so a slow DNS lookup or TLS handshake is bounded too.
  Skipped (None) behind an HTTP(S) proxy, where only wandb knows the way out.
  """
  if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                                      "http_proxy", "ALL_PROXY", "all_proxy")):
    return None
  parts = urlsplit(base_url)
  host = parts.hostname
  if not host:
    return None
  port = parts.port or (443 if parts.scheme == "https" else 80)
  outcome = []

  def ask():
    import http.client
    kind = (http.client.HTTPSConnection if parts.scheme == "https"
            else http.client.HTTPConnection)
    connection = kind(host, port, timeout=timeout)
    try:
      connection.request("HEAD", "/")
      connection.getresponse()
      outcome.append(None)
    except (OSError, http.client.HTTPException) as error:
      outcome.append(f"{type(error).__name__}: {error}")
    finally:
      connection.close()

  thread = threading.Thread(target=ask, daemon=True)
  thread.start()
  thread.join(timeout)
  if not outcome:
    return f"no answer from {host}:{port} within {timeout:.0f} s"
  return outcome[0]


def _one_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"


def chunk_data(aggregate: dict, per_seed: dict, base_seed: int = 0) -> dict:
  """One wandb.log payload: the aggregates, and per seed `seed_<k>/<name>`."""
  data = dict(aggregate)
  for name, values in per_seed.items():
    for i, value in enumerate(values):
      if value is not None:  # diverged (non-finite) values are stored as None
        data[f"seed_{base_seed + i}/{name}"] = value
  return data


def summary_data(summary: dict) -> dict:
  """The run-summary entries; `converged_fraction` etc. are the sweep metrics."""
  agg = summary["aggregate"]
  return {**sweep_metrics(summary), "seeds": agg["seeds"],
          "converged": agg["converged"], "diverged": agg["diverged"]}


def generalisation_rows(summary: dict):
  """(columns, rows): a row per seed, bit errors per sequence per test length."""
  lengths = list(summary["aggregate"]["median_bit_errors_by_length"])
  columns = (["seed", "converged_step", "diverged"]
             + [f"bit_errors_L{n}" for n in lengths])
  rows = [[s["seed"], s["converged_step"], s["diverged"]]
          + [s["bit_errors_by_length"][n] for n in lengths] for s in summary["seeds"]]
  return columns, rows


@dataclasses.dataclass(frozen=True)
class Timeouts:
  """Seconds the logger waits. init: for wandb.init (and its login);
  connect: for the server's first HTTP answer; online_budget: from start()
  until an online init that has not finished gives way to offline (the
  offline init after it takes about a second more)."""
  init: float = 30.0
  connect: float = 3.0
  online_budget: float = 7.0


class WandbLogger:
  """Logs config, per-chunk aggregates and per-seed metrics, and the summary."""

  def __init__(self, mode: str = "offline", project: Optional[str] = None,
               entity: Optional[str] = None, name: Optional[str] = None,
               log: Callable[[str], None] = print, timeouts: Timeouts = Timeouts()):
    if mode not in MODES:
      raise ValueError(f"unknown W&B mode {mode!r}; choose one of {MODES}")
    self.mode = mode
    self.project = project or os.environ.get("WANDB_PROJECT") or "ntm_jax"
    self.entity = entity or os.environ.get("WANDB_ENTITY")
    self.name = name
    self.log = log
    self.timeouts = timeouts
    self.run = None
    self.base_seed = 0
    self.out_dir = "."

  def _online_or_offline(self) -> str:
    base_url = _base_url()
    if not _has_credentials(base_url):
      self.log("W&B: no API key (set WANDB_API_KEY or run `wandb login`): "
               "logging offline instead")
      return "offline"
    reason = _unreachable(base_url, min(self.timeouts.connect, self.timeouts.init))
    if reason is not None:
      self.log(f"W&B: cannot reach {base_url} ({reason}); logging offline instead")
      return "offline"
    return "online"

  def start(self, config: dict, out_dir: str) -> None:
    self.base_seed = config.get("train", {}).get("seed", 0)
    self.out_dir = out_dir
    if self.mode == "off":
      return
    began = time.monotonic()
    import wandb
    mode = self._online_or_offline() if self.mode == "online" else self.mode
    in_sweep = bool(os.environ.get("WANDB_SWEEP_ID"))  # the sweep names the project
    for attempt in (mode, "offline") if mode == "online" else (mode,):
      timeout = self.timeouts.init
      if attempt == "online":  # a server that answers the probe but stalls
        timeout = max(1.0, min(timeout, self.timeouts.online_budget
                               - (time.monotonic() - began)))
      # Never prompt, never capture the console; bounded waits everywhere.
      settings = wandb.Settings(silent=True, console="off", init_timeout=timeout,
                                login_timeout=timeout, x_disable_stats=True,
                                disable_git=True)
      try:
        self.run = wandb.init(
            project=None if in_sweep else self.project,
            entity=None if in_sweep else self.entity, name=self.name,
            dir=os.path.abspath(out_dir), config=config, mode=attempt,
            settings=settings, reinit="create_new")
        mode = attempt
        break
      except Exception as error:  # no network, server down, bad entity...
        self.log(f"W&B: {attempt} init failed ({_one_line(error)}); "
                 + ("logging offline instead" if attempt == "online"
                    else "not logging to W&B"))
    if self.run is None:
      return
    if mode == "offline":
      self.log("W&B: logging offline; upload later with: wandb sync "
               f"{os.path.dirname(self.run.dir)}")
    else:
      self.log(f"W&B: logging to {self.run.url}")

  def log_chunk(self, step: int, aggregate: dict, per_seed: dict) -> None:
    if self.run is None:
      return
    self.run.log(chunk_data(aggregate, per_seed, self.base_seed), step=step)

  def finish(self, summary: dict) -> None:
    if self.run is None:
      return
    run, self.run = self.run, None
    try:
      import wandb
      for key, value in summary_data(summary).items():
        run.summary[key] = value
      columns, rows = generalisation_rows(summary)
      table = wandb.Table(columns=columns, data=rows)
      images = {f"plots/{os.path.splitext(os.path.basename(p))[0]}":
                wandb.Image(os.path.join(self.out_dir, p)) for p in summary.get("plots", [])}
      run.log({"generalisation": table, **images})
    finally:
      run.finish()  # even if the summary failed: close the run's files
