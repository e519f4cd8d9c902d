"""INITIAL_CHECKPOINT_PATH: a new run starts from the parameters of another checkpoint.

Ours: the path is either one checkpoint (`.../checkpoint_<step>`) or a MODEL_DIR:
then its best checkpoint by validation perplexity when it kept one
(`train.keep_best`), else its latest. Outside formats (Hugging Face T5 or
BlenderBot, T5X, Mesh-TensorFlow; INITIAL_CHECKPOINT_FORMAT, default `auto`) go
through `checkpoints.importers`, one tensor at a time straight onto the mesh.
Only the parameters are read (the new run has its own optimizer and step 0);
shapes and the model config are compared first, so a mismatch is an error naming
the parameter or field instead of a failure deep in a restore.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Mapping

from etils import epath

import jax
from flax import traverse_util

from prosocial_jax.checkpoints import importers
from prosocial_jax.checkpoints.compatibility import RUN_SETTINGS, vocabulary_problems
from prosocial_jax.checkpoints.manager import STEP_PREFIX, Checkpointer
from prosocial_jax.models.registry import config_to_dict

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


def _is_ours(path: epath.Path) -> bool:
  if re.fullmatch(rf"{STEP_PREFIX}_\d+", path.name) and (path / "meta").exists():
    return True
  return any((p / "meta").exists() for p in path.glob(f"{STEP_PREFIX}_*"))


def _shape_error(source: str, expected: Mapping[str, list[int]],
                 found: Mapping[str, list[int]], config_lines: list[str] = ()
                 ) -> InitialCheckpointError:
  names = sorted(set(expected) | set(found))
  differing = [n for n in names if expected.get(n) != found.get(n)]
  lines = [f"  {n}: checkpoint {found.get(n, 'absent')}, this model "
           f"{expected.get(n, 'absent')}" for n in differing[:8]]
  if len(differing) > 8:
    lines.append(f"  ... and {len(differing) - 8} more parameters")
  why = ("\nThe model configs differ in:\n" + "\n".join(config_lines)) if config_lines else ""
  return InitialCheckpointError(f"INITIAL_CHECKPOINT_PATH {source} holds parameters of another "
                                "shape than this model's:\n" + "\n".join(lines) + why)


def _differing_fields(theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> list[str]:
  """The model-config fields, run settings aside, in which two configs differ."""
  return [k for k in sorted(ours) if k not in RUN_SETTINGS and theirs.get(k) != ours.get(k)]


def _config_lines(saved: Mapping[str, Any], model_config) -> list[str]:
  """What explains a shape mismatch with one of our checkpoints (e.g. `vocab_size`)."""
  if not saved or model_config is None:
    return []
  ours = config_to_dict(model_config)
  return [f"  model_config.{k}: checkpoint {saved.get(k)!r}, this model {ours[k]!r}"
          for k in _differing_fields(saved, ours)]


def _import_params(path: str, format: str, model_config, expected_shapes, target_params):
  """An outside checkpoint's parameters, placed tensor by tensor on the target shardings."""
  imported = importers.import_checkpoint(path, format=format, config=model_config)
  if model_config is not None:
    theirs, ours = config_to_dict(imported.config), config_to_dict(model_config)
    fields = _differing_fields(theirs, ours)
    if fields:
      raise InitialCheckpointError(
          f"INITIAL_CHECKPOINT_PATH {path} ({imported.format}) is another model: " +
          ", ".join(f"{k} {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in fields))
  targets = {"/".join(str(getattr(k, "key", k)) for k in key_path): leaf
             for key_path, leaf in jax.tree_util.tree_flatten_with_path(target_params)[0]}
  placed, shapes = {}, {}
  for name, array in imported.tensors():
    shapes[name] = list(array.shape)
    if name in targets and list(array.shape) == list(targets[name].shape):
      placed[name] = jax.device_put(array.astype(targets[name].dtype), targets[name].sharding)
  if shapes != dict(expected_shapes):
    raise _shape_error(f"{path} ({imported.format})", expected_shapes, shapes)
  logger.info("Parameters from %s (%s): %s", path, imported.format, imported.report.summary())
  return traverse_util.unflatten_dict(placed, sep="/")


def load_initial_params(path: str, expected_shapes: Mapping[str, list[int]], target_params, *,
                        format: str = "auto", model_config=None,
                        vocabulary: Mapping[str, Any] | None = None):
  """The parameters of the checkpoint `path` names, on `target_params`' shardings.

  `format`: "auto" (ours when `path` holds our checkpoints, else detected from its
  files), or one of `importers.FORMATS`; `model_config` is checked against an
  outside checkpoint's (and given to importers of formats that carry none); for
  ours, the config fields that differ explain a shape mismatch, and a checkpoint
  trained with another vocabulary (`vocabulary`: this run's record) is warned of:
  its embedding rows mean other tokens."""
  path = path if "://" in path else os.path.abspath(os.path.expanduser(path))
  if not epath.Path(path).exists():
    raise InitialCheckpointError(f"INITIAL_CHECKPOINT_PATH {path} does not exist.")
  if format != "auto" or not _is_ours(epath.Path(path)):
    return _import_params(path, format, model_config, expected_shapes, target_params)
  model_dir, step = _locate(path)
  checkpointer = Checkpointer(model_dir, max_to_keep=None)
  try:
    meta = checkpointer.read_meta(step)
    saved: dict[str, Any] = meta.get("param_shapes", {})
    if saved and saved != dict(expected_shapes):
      raise _shape_error(f"{model_dir} (step {step})", expected_shapes, saved,
                         _config_lines(meta.get("model_config", {}), model_config))
    problems = vocabulary_problems(meta.get("vocabulary", {}), vocabulary or {})
    if problems:  # one warning, every difference under it
      logger.warning("INITIAL_CHECKPOINT_PATH %s (step %d) was trained with another "
                     "vocabulary than this run's; its embeddings mean other tokens:\n%s",
                     model_dir, step, "\n".join(problems))
    params = checkpointer.restore_params(step, target_params)
  finally:
    checkpointer.close()
  logger.info("Parameters from %s/%s_%d.", model_dir, STEP_PREFIX, step)
  return params
