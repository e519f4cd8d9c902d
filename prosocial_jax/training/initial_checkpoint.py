"""INITIAL_CHECKPOINT_PATH: a new run starts from the parameters of another run's checkpoint.

The path is either one checkpoint (`.../checkpoint_<step>`) or a MODEL_DIR: then
its best checkpoint by validation perplexity when it kept one (`train.keep_best`),
else its latest. Only the parameters are read (the new run has its own optimizer
and step 0); shapes are compared first, so a mismatch is an error naming the
parameters instead of an orbax failure. Foreign formats (Hugging Face, T5X,
Mesh-TF) come through the importers.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Mapping

from etils import epath

from prosocial_jax.checkpoints.manager import STEP_PREFIX, Checkpointer

logger = logging.getLogger("prosocial_jax")


class InitialCheckpointError(ValueError):
  """INITIAL_CHECKPOINT_PATH cannot seed this model."""


def _locate(path: str) -> tuple[str, int]:
  """(MODEL_DIR, step) that `path` names."""
  path = path.rstrip("/")
  match = re.fullmatch(rf"(.*)/{STEP_PREFIX}_(\d+)", path)
  if match:
    return match.group(1), int(match.group(2))
  checkpointer = Checkpointer(path, max_to_keep=None)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise InitialCheckpointError(f"INITIAL_CHECKPOINT_PATH {path} holds no "
                                   f"{STEP_PREFIX}_<step> folder.")
    scored = {s: checkpointer.metrics(s) for s in steps}
    scored = {s: m["perplexity"] for s, m in scored.items() if m and "perplexity" in m}
    if scored:
      step = min(scored, key=scored.get)
      logger.info("INITIAL_CHECKPOINT_PATH %s: its best checkpoint, step %d (validation "
                  "perplexity %.4f).", path, step, scored[step])
    else:
      step = max(steps)
      logger.info("INITIAL_CHECKPOINT_PATH %s: its latest checkpoint, step %d.", path, step)
    return path, step
  finally:
    checkpointer.close()


def load_initial_params(path: str, expected_shapes: Mapping[str, list[int]], target_params):
  """The parameters of the checkpoint `path` names, on `target_params`' shardings."""
  path = path if "://" in path else os.path.abspath(os.path.expanduser(path))
  if not epath.Path(path).exists():
    raise InitialCheckpointError(f"INITIAL_CHECKPOINT_PATH {path} does not exist.")
  model_dir, step = _locate(path)
  folder = epath.Path(model_dir) / f"{STEP_PREFIX}_{step}"
  if not (folder / "meta").exists() or not (folder / "state").exists():
    raise InitialCheckpointError(
        f"INITIAL_CHECKPOINT_PATH {folder} is not a prosocial_jax checkpoint (no meta/ and "
        "state/ inside). T5X, Hugging Face, Mesh-TensorFlow and BlenderBot checkpoints are "
        "read through the importers, not directly.")
  checkpointer = Checkpointer(model_dir, max_to_keep=None)
  try:
    saved: dict[str, Any] = checkpointer.read_meta(step).get("param_shapes", {})
    if saved and saved != dict(expected_shapes):
      names = sorted(set(saved) | set(expected_shapes))
      differing = [n for n in names if saved.get(n) != expected_shapes.get(n)]
      lines = [f"  {n}: checkpoint {saved.get(n, 'absent')}, this model "
               f"{expected_shapes.get(n, 'absent')}" for n in differing[:8]]
      if len(differing) > 8:
        lines.append(f"  ... and {len(differing) - 8} more parameters")
      raise InitialCheckpointError(
          f"INITIAL_CHECKPOINT_PATH {model_dir} (step {step}) holds parameters of another "
          "shape than this model's:\n" + "\n".join(lines))
    params = checkpointer.restore_params(step, target_params)
  finally:
    checkpointer.close()
  logger.info("Parameters from %s/%s_%d.", model_dir, STEP_PREFIX, step)
  return params
