"""One of our checkpoints opened for offline use: export, evaluation, inference.

    stored = open_checkpoint("gs://bucket/run", step="best")
    stored.config          # the model config the run trained (from the checkpoint's meta)
    stored.params()        # float32 numpy parameters, unscanned (`layers_{i}`), on the host
    stored.vocabulary      # {"kind": "sentencepiece", "path": MODEL_DIR/vocabulary/x.model, ...}

`step` is "latest", "best" (the best validation perplexity recorded with a
checkpoint; the latest when none was) or a number. A MODEL_DIR that does not
exist, holds no complete checkpoint, or lacks the step asked for is an error
saying which, listing the steps it has. Only the parameters are read, never
the optimizer state, and nothing touches an accelerator: the arrays stay numpy.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Any, Union

import numpy as np
from etils import epath
from flax import traverse_util

from prosocial_jax.checkpoints.assets import VOCABULARY_DIR, file_sha256
from prosocial_jax.checkpoints.manager import STEP_PREFIX, Checkpointer
from prosocial_jax.models import stack
from prosocial_jax.models.registry import config_from_dict

Step = Union[int, str]


class CheckpointNotFoundError(ValueError):
  """The MODEL_DIR or step asked for holds no complete checkpoint; the message says which."""


def _steps_text(steps: list[int]) -> str:
  return ", ".join(map(str, steps)) if steps else "none"


def _complete(model_dir: str, step: int) -> bool:
  # orbax lists any finalised-looking checkpoint_<n> folder; one copied in part (or
  # written by something else) may lack the items read here, and would otherwise fail
  # later with orbax's KeyError instead of this module's message.
  folder = epath.Path(model_dir) / f"{STEP_PREFIX}_{step}"
  return (folder / "meta").exists() and (folder / "state").exists()


logger = logging.getLogger("prosocial_jax")

# The config.json key under which an export records the task and feature lengths its run
# trained on (exporters write it; `convert` and the inference tools read it back).
RUN_KEY = "prosocial_jax"


def exported_run(config_json: Any) -> dict[str, Any]:
  """The `RUN_KEY` record of an exported folder's parsed config.json ({} when it has
  none, e.g. a folder that did not come from us)."""
  run = config_json.get(RUN_KEY) if isinstance(config_json, dict) else None
  return dict(run) if isinstance(run, dict) else {}


def choose_step(checkpointer: Checkpointer, step: Step) -> int:
  """The step `step` ("latest", "best" or a number) names in `checkpointer`'s MODEL_DIR;
  only steps whose folder holds both `state` and `meta` count."""
  where = checkpointer.model_dir
  listed = checkpointer.all_steps()
  steps = [s for s in listed if _complete(where, s)]
  if not steps:
    partial = [f"{STEP_PREFIX}_{s}" for s in listed]
    raise CheckpointNotFoundError(
        f"{where} holds no complete {STEP_PREFIX}_<step> folder"
        + (f" (incomplete, without state/ or meta/: {', '.join(partial)})." if partial else "."))
  if step == "latest":
    return max(steps)
  if step == "best":
    scored = {s: (checkpointer.metrics(s) or {}).get("perplexity") for s in steps}
    scored = {s: p for s, p in scored.items() if p is not None}
    if not scored:
      logger.warning(
          "%s records no validation perplexity with any checkpoint (a run with "
          "train.keep_best does): step 'best' is the latest, %d.", where, max(steps))
      return max(steps)
    return min(scored, key=scored.get)
  try:
    number = int(step)
  except (TypeError, ValueError):
    raise CheckpointNotFoundError(
        f"step must be 'latest', 'best' or a number, got {step!r}") from None
  if number not in steps:
    raise CheckpointNotFoundError(
        f"{where} has no complete checkpoint at step {number}; it has steps "
        f"{_steps_text(steps)}.")
  return number


def unstack_layers(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Scanned parameters (`<stack>/layers/<rest>`, layer axis `stack.PARAMS_SCAN_AXIS`)
  -> one `<stack>/layers_{i}/<rest>` each; unscanned names pass unchanged."""
  out = {}
  for name, array in flat.items():
    m = re.fullmatch(r"(.+)/layers/(.+)", name)
    if not m:
      out[name] = array
      continue
    for i in range(array.shape[stack.PARAMS_SCAN_AXIS]):
      out[f"{m.group(1)}/layers_{i}/{m.group(2)}"] = np.ascontiguousarray(
          np.take(array, i, axis=stack.PARAMS_SCAN_AXIS))
  return out


@dataclasses.dataclass
class StoredCheckpoint:
  """A checkpoint of ours, its meta read, its parameters read when asked."""
  model_dir: str
  step: int
  meta: dict[str, Any]
  config: Any
  vocabulary: dict[str, Any]

  @property
  def path(self) -> str:
    return os.path.join(self.model_dir, f"{STEP_PREFIX}_{self.step}")

  @property
  def trained_on(self) -> dict[str, Any]:
    """What the weights were trained on (`mixture_or_task_name`, `task_feature_lengths`):
    the run's input record, or for a checkpoint converted from an export of ours what
    the export's config.json recorded (`RUN_KEY`); {} when unknown."""
    return self.meta.get("input") or self.meta.get("trained_on") or {}

  def params(self, *, unscanned: bool = True) -> dict[str, Any]:
    """The parameters as a nested dict of float32 numpy arrays (`unscanned`: scanned
    stacks split into `layers_{i}`, the layout every outside format uses)."""
    import jax  # pylint: disable=import-outside-toplevel
    shapes = self.meta.get("param_shapes")
    if not shapes:
      raise CheckpointNotFoundError(f"{self.path}: its meta records no param_shapes.")
    target = traverse_util.unflatten_dict(
        {name: jax.ShapeDtypeStruct(tuple(shape), np.float32,
                                    sharding=jax.sharding.SingleDeviceSharding(_host()))
         for name, shape in shapes.items()}, sep="/")
    checkpointer = Checkpointer(self.model_dir, max_to_keep=None)
    try:
      params = checkpointer.restore_params(self.step, target)
    finally:
      checkpointer.close()
    flat = {name: np.asarray(array, np.float32) for name, array in
            traverse_util.flatten_dict(params, sep="/").items()}
    if unscanned:
      flat = unstack_layers(flat)
    return traverse_util.unflatten_dict(flat, sep="/")


def _host():
  import jax  # pylint: disable=import-outside-toplevel
  try:
    return jax.local_devices(backend="cpu")[0]
  except RuntimeError:  # JAX_PLATFORMS without cpu
    return jax.local_devices()[0]


def _vocabulary(model_dir: str, record: dict[str, Any]) -> dict[str, Any]:
  """The checkpoint's vocabulary record with `path`: the copy in MODEL_DIR/vocabulary/
  (checked against the recorded sha256), else the recorded source when it still
  matches; {} when the run recorded none."""
  if not record:
    return {}
  record = {"kind": "sentencepiece", **record}
  if record["kind"] != "sentencepiece":
    return record
  name = os.path.basename(record.get("source", ""))
  candidates = [os.path.join(model_dir, VOCABULARY_DIR, name), record.get("source", "")]
  for candidate in candidates:
    if candidate and epath.Path(candidate).exists():
      if record.get("sha256") and file_sha256(candidate) != record["sha256"]:
        continue
      return {**record, "path": candidate}
  raise CheckpointNotFoundError(
      f"{model_dir}: the SentencePiece model the run trained with ({name}, sha256 "
      f"{record.get('sha256', '?')[:12]}…) is neither in {VOCABULARY_DIR}/ nor at "
      f"{record.get('source')}.")


def open_checkpoint(model_dir: str, step: Step = "latest") -> StoredCheckpoint:
  """Our checkpoint at MODEL_DIR `model_dir` and `step` (see the module docstring)."""
  model_dir = model_dir if "://" in model_dir else os.path.abspath(
      os.path.expanduser(model_dir))
  if not epath.Path(model_dir).exists():
    raise CheckpointNotFoundError(f"MODEL_DIR {model_dir} does not exist.")
  checkpointer = Checkpointer(model_dir, max_to_keep=None)
  try:
    chosen = choose_step(checkpointer, step)
    meta = checkpointer.read_meta(chosen)
  finally:
    checkpointer.close()
  if "model_config" not in meta:
    raise CheckpointNotFoundError(f"{model_dir} step {chosen}: its meta records no model_config.")
  return StoredCheckpoint(model_dir=model_dir, step=chosen, meta=meta,
                          config=config_from_dict(meta["model_config"]),
                          vocabulary=_vocabulary(model_dir, meta.get("vocabulary") or {}))
