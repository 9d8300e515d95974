"""The live progress bar of a run (tqdm), or nothing when it is off."""


class Progress:
  """A live bar: step, steps/s, median loss, converged / diverged seeds."""

  def __init__(self, total: int, initial: int, enabled: bool):
    self.bar = None
    if enabled:
      from tqdm import tqdm
      self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

  def update(self, steps: int, median_loss: float, converged: int, diverged: int, seeds: int):
    if self.bar is not None:
      self.bar.set_postfix_str(f"loss {median_loss:.2f} bits, converged {converged}/{seeds}, "
                               f"diverged {diverged}")
      self.bar.update(steps)

  def close(self):
    if self.bar is not None:
      self.bar.close()
