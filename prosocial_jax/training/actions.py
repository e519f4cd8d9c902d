"""What the loop does besides stepping: log, evaluate, adapt the rate, stop early, save.

Run in this order after each step where they are due (`trainer.build_actions`;
`profiling.Profile` goes first when `train.profile_steps` asks for a trace):
  LogMetrics       every `log_every`: interval means to console, TensorBoard, metrics.jsonl
  Evaluate         every `eval_every`: validation perplexity (+ SeqIO decode metrics if asked)
  PlateauSchedule  after each evaluation: reduce-on-plateau's learning-rate scale
  EarlyStopping    after each evaluation: stop when perplexity stopped improving
  SaveCheckpoint   every `checkpoint_every`, at each evaluation when the best is kept,
                   and at the end
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any, Callable

import jax
from jax.sharding import NamedSharding, PartitionSpec

from prosocial_jax.evaluation.evaluator import EvaluationInterrupted
from prosocial_jax.training.loop import Action, Loop, loop_states
from prosocial_jax.training.schedules import ReduceOnPlateau

logger = logging.getLogger("prosocial_jax")


class LogMetrics(Action):
  """Means of the step metrics over the interval, throughput, MFU and ETA."""
  name = "log"
  at_end = True

  def __init__(self, every: int, *, flops_per_step: float | None, peak_flops: float | None):
    super().__init__(every)
    self._flops_per_step = flops_per_step
    self._peak_flops = peak_flops  # of all devices together
    self._last_time = time.perf_counter()
    self._last_step: int | None = None

  def due(self, loop: Loop) -> bool:  # not twice for one step, nor without a step
    last = self._last_step if self._last_step is not None else loop.start_step
    return super().due(loop) and loop.step != last

  def run(self, loop: Loop) -> None:
    loop.raise_if_nonfinite()
    first_bad = loop.metric_sums.first_nonfinite()
    metrics = loop.metric_sums.take()
    if metrics.get("skipped_updates"):
      logger.warning("Skipped %d update(s) in steps %d-%d for a non-finite loss, gradient norm "
                     "or update (the first at step %d: the %s); those batches left the "
                     "parameters unchanged.", metrics["skipped_updates"],
                     (self._last_step if self._last_step is not None else loop.start_step) + 1,
                     loop.step, *first_bad)
    now = time.perf_counter()
    first_step = self._last_step if self._last_step is not None else loop.start_step
    elapsed = max(now - self._last_time - loop.paused_seconds, 1e-9)
    steps_per_sec = (loop.step - first_step) / elapsed
    metrics["timing/steps_per_second"] = steps_per_sec
    # Non-padding input and target tokens of the global batches (all hosts).
    tokens_per_step = metrics["input_tokens"] + metrics["target_tokens"]
    metrics["timing/tokens_per_second"] = tokens_per_step * steps_per_sec
    if self._flops_per_step and self._peak_flops:
      metrics["timing/mfu"] = self._flops_per_step * steps_per_sec / self._peak_flops
    remaining = max(loop.train_steps - loop.step, 0)
    eta = datetime.timedelta(seconds=round(remaining / steps_per_sec)) if steps_per_sec else "?"
    mfu = f" | MFU {100 * metrics['timing/mfu']:.1f}%" if "timing/mfu" in metrics else ""
    logger.info("step %d/%d | loss %.4f | token acc %.3f | lr %.3g | %.2f steps/s | "
                "%s tokens/s%s | ETA %s", loop.step, loop.train_steps, metrics["loss"],
                metrics["accuracy"], metrics["learning_rate"], steps_per_sec,
                f"{metrics['timing/tokens_per_second']:,.0f}", mfu, eta)
    loop.writer.write(loop.step, metrics)
    loop.last_metrics = metrics
    self._last_time, self._last_step = now, loop.step
    loop.paused_seconds = 0.0


class Evaluate(Action):
  """Validation perplexity (teacher forced); with `decode`, the SeqIO metrics too."""
  name = "evaluate"

  def __init__(self, every: int, perplexity, *, decode: Callable[[Loop], dict] | None = None):
    super().__init__(every)
    self._perplexity = perplexity
    self._decode = decode
    self._score = None
    self.last_decode: tuple[int, dict] | None = None  # (step, SeqIO results) of the latest
    self._abandoned_at: int | None = None  # a step whose evaluation SIGTERM cut short

  def run(self, loop: Loop) -> None:
    loop.raise_if_nonfinite()  # no evaluation of diverged parameters
    if self._score is None:  # replicated outputs: readable by every process
      self._score = jax.jit(loop.model.score_batch,
                            out_shardings=NamedSharding(loop.mesh, PartitionSpec()))
    try:
      result = self._perplexity(self._score, loop.state.params, loop.mesh, loop.rules,
                                should_stop=loop.asked_to_stop)
      logger.info("step %d: validation perplexity %.4f (%s, %s split)", loop.step,
                  result["perplexity"], self._perplexity.name, self._perplexity.split)
      scalars = {f"eval/{k}": v for k, v in result.items()}
      if self._decode is not None:
        decoded = self._decode(loop)
        for task, values in decoded.items():
          scalars.update({f"eval/{task}/{k}": v for k, v in values.items()})
        self.last_decode = (loop.step, decoded)
    except EvaluationInterrupted:
      # A preemption's grace period is short: the save of this step comes first. Nothing
      # of the abandoned evaluation is recorded; the checkpoint records it as owed
      # (`state_dict`) and the resumed run does it before its first step.
      logger.warning("step %d: %s received during the evaluation: abandoned, so that the "
                     "step is saved at once (the resumed run evaluates it first).", loop.step,
                     loop.asked_to_stop())
      self._abandoned_at = loop.step
      return
    self._abandoned_at = None
    loop.writer.write(loop.step, scalars)
    loop.eval_result = result

  def due(self, loop: Loop) -> bool:
    return super().due(loop) or self.owed(loop)

  def owed(self, loop: Loop) -> bool:
    return self._abandoned_at is not None and self._abandoned_at == loop.step

  def state_dict(self) -> dict[str, Any]:
    return {} if self._abandoned_at is None else {"abandoned_at": self._abandoned_at}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self._abandoned_at = state.get("abandoned_at")


class PlateauSchedule(Action):
  """Reduce-on-plateau: after each evaluation, the learning-rate scale of the next steps."""
  name = "reduce_on_plateau"
  follows_evaluation = True

  def __init__(self, plateau: ReduceOnPlateau, learning_rate: Callable):
    super().__init__(0)
    self.plateau = plateau
    self._learning_rate = learning_rate

  def due(self, loop: Loop) -> bool:
    return loop.eval_result is not None

  def run(self, loop: Loop) -> None:
    self.plateau.update(loop.eval_result["perplexity"],
                        float(self._learning_rate(loop.step)), loop.step)
    loop.lr_scale = self.plateau.scale

  def state_dict(self) -> dict[str, Any]:
    return self.plateau.state_dict()

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.plateau.load_state_dict(state)


class EarlyStopping(Action):
  """Stops when validation perplexity has not improved for `patience` evaluations."""
  name = "early_stopping"
  follows_evaluation = True

  def __init__(self, patience: int, min_delta: float = 0.0):
    super().__init__(0)
    if patience < 1:
      raise ValueError(f"train.early_stopping_patience must be >= 1, got {patience}")
    self.patience, self.min_delta = patience, min_delta
    self.best: float | None = None
    self.best_step: int | None = None
    self.bad_evaluations = 0

  def due(self, loop: Loop) -> bool:
    return loop.eval_result is not None

  def run(self, loop: Loop) -> None:
    perplexity = loop.eval_result["perplexity"]
    if self.best is None or perplexity < self.best - self.min_delta:
      self.best, self.best_step, self.bad_evaluations = perplexity, loop.step, 0
      return
    self.bad_evaluations += 1
    if self.bad_evaluations >= self.patience:
      loop.stop_reason = (f"early stopping: validation perplexity has not improved for "
                          f"{self.bad_evaluations} evaluations (best {self.best:.4f} at step "
                          f"{self.best_step})")

  def state_dict(self) -> dict[str, Any]:
    return {"best": self.best, "best_step": self.best_step,
            "bad_evaluations": self.bad_evaluations}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.best, self.best_step = state["best"], state["best_step"]
    self.bad_evaluations = int(state["bad_evaluations"])


class SaveCheckpoint(Action):
  """Saves state, metadata (with every action's state) and each host's input position."""
  name = "checkpoint"
  at_end = True

  def __init__(self, every: int, actions: list[Action], *, at_evaluations: bool):
    super().__init__(every)
    self._actions = actions  # whose states go into meta["loop"]
    self._at_evaluations = at_evaluations

  def due(self, loop: Loop) -> bool:
    if loop.last_saved_step == loop.step:
      return False
    return super().due(loop) or (self._at_evaluations and loop.eval_result is not None)

  def run(self, loop: Loop) -> None:
    loop.raise_if_nonfinite()  # nothing non-finite is ever saved
    loop.raise_if_state_nonfinite()
    meta = dict(loop.meta, loop={"lr_scale": loop.lr_scale, "stop_reason": loop.stop_reason,
                                 **loop_states(self._actions)})
    metrics = None
    if loop.eval_result is not None:
      metrics = {"perplexity": loop.eval_result["perplexity"]}
    loop.checkpointer.save(loop.step, loop.state, meta, input_iterator=loop.batches,
                           metrics=metrics)
    loop.last_saved_step = loop.step
