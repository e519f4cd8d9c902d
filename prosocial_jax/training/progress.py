"""Progress lines on the console and scalars for TensorBoard."""

from __future__ import annotations

import datetime
import logging
import time
from typing import Mapping

import numpy as np

logger = logging.getLogger("prosocial_jax")


def count_tokens(host_batch: Mapping[str, np.ndarray]) -> int:
  """Non-padding input and target tokens of a batch (what tokens/s counts)."""
  inputs = int(np.count_nonzero(host_batch["encoder_input_tokens"]))
  targets = int(np.sum(host_batch["decoder_loss_weights"] > 0))
  return inputs + targets


class Progress:
  """Tracks throughput between reports and formats the progress line."""

  def __init__(self, total_steps: int, start_step: int):
    self.total_steps = total_steps
    self._last_time = time.perf_counter()
    self._last_step = start_step
    self._tokens = 0

  def add_tokens(self, n: int) -> None:
    self._tokens += n

  def report(self, step: int, metrics: Mapping[str, float]) -> dict[str, float]:
    """Logs one line; returns the metrics plus timing figures for the writer."""
    now = time.perf_counter()
    elapsed = max(now - self._last_time, 1e-9)
    steps_per_sec = (step - self._last_step) / elapsed
    tokens_per_sec = self._tokens / elapsed
    remaining = max(self.total_steps - step, 0)
    eta = datetime.timedelta(seconds=round(remaining / steps_per_sec)) if steps_per_sec else "?"
    logger.info("step %d/%d | loss %.4f | token acc %.3f | %.2f steps/s | %s tokens/s | ETA %s",
                step, self.total_steps, metrics["loss"], metrics.get("accuracy", float("nan")),
                steps_per_sec, f"{tokens_per_sec:,.0f}", eta)
    self._last_time, self._last_step, self._tokens = now, step, 0
    return {**metrics, "timing/steps_per_second": steps_per_sec,
            "timing/tokens_per_second": tokens_per_sec}


class ScalarWriter:
  """TensorBoard event files under MODEL_DIR/<name> (tensorboardX, no TF needed)."""

  def __init__(self, log_dir: str):
    from tensorboardX import SummaryWriter
    self._writer = SummaryWriter(log_dir)

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    for name, value in scalars.items():
      self._writer.add_scalar(name, float(value), step)
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
