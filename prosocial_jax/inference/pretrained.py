"""A trained model opened for inference: parameters, vocabulary and the run's input format.

    pretrained = load_pretrained("runs/canary")             # our MODEL_DIR (latest step)
    pretrained = load_pretrained("runs/canary", step="best")
    pretrained = load_pretrained("canary_hf")               # written by prosocial_jax.export

Either way the result holds the model config, float32 numpy parameters
(unscanned: inference needs no scanned stacks; attention_kernel='cudnn' only on a GPU,
else 'xla', the same model: `ModelConfig.runnable_on`), the vocabulary record
({"kind": "sentencepiece" | "byte", "path", "extra_ids"}, as checkpoints record
it) and the task and feature lengths the run trained on, so that inputs are cut
and decoded to the lengths the model learned. A MODEL_DIR records them with each
checkpoint (`meta["input"]`), an exported folder in config.json (`stored.exported_run`).
A checkpoint without that record (converted, or exported before the record
existed) gets `DEFAULT_FEATURE_LENGTHS`, bounded by a model's learned positions;
`feature_lengths=` overrides either.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional

import jax
from etils import epath
from flax import traverse_util

from prosocial_jax.checkpoints.exporters.errors import ExportError
from prosocial_jax.checkpoints.exporters.tokenizer import folder_vocabulary
from prosocial_jax.checkpoints.importers import CheckpointImportError, import_checkpoint
from prosocial_jax.checkpoints.stored import (CheckpointNotFoundError, Step, exported_run,
                                              open_checkpoint)
from prosocial_jax.data.encoding import BYTE, make_vocabulary
from prosocial_jax.models.registry import config_to_dict

DEFAULT_FEATURE_LENGTHS = {"inputs": 512, "targets": 128}
CANARY, PROST = "canary", "prost"


class PretrainedError(ValueError):
  """A path that holds no usable model; the message says why."""


# What loading can raise, for callers that report errors instead of tracebacks.
LOAD_ERRORS = (PretrainedError, CheckpointNotFoundError, CheckpointImportError, ExportError)


@dataclasses.dataclass
class Pretrained:
  """What `load_pretrained` found at `source`."""
  source: str
  config: Any
  params: dict[str, Any]
  vocabulary: dict[str, Any]
  feature_lengths: dict[str, int]
  task: Optional[str] = None   # the task or mixture it trained on, when recorded
  step: Optional[int] = None

  @property
  def kind(self) -> str:
    """CANARY or PROST: from the task it trained on (`prost` in the name: Prost's tasks
    and mixtures), else from the architecture (BlenderBot-style: Prost, T5: Canary)."""
    if self.task:
      return PROST if "prost" in self.task else CANARY
    return PROST if config_to_dict(self.config)["family"] == "prost" else CANARY

  def seqio_vocabulary(self):
    """The seqio vocabulary the tasks encoded with (`data.encoding.make_vocabulary`)."""
    spec = self.vocabulary["path"] if self.vocabulary["kind"] == "sentencepiece" else BYTE
    return make_vocabulary(spec, int(self.vocabulary.get("extra_ids") or 0))


def is_exported_folder(path: str) -> bool:
  """A Hugging Face folder (config.json beside the weights), not a MODEL_DIR."""
  return (epath.Path(path) / "config.json").exists()


def load_pretrained(path: str, *, step: Step = "latest",
                    feature_lengths: Optional[Mapping[str, int]] = None) -> Pretrained:
  """The model at `path` (see the module docstring); `step` for a MODEL_DIR only."""
  path = path if "://" in path else os.path.abspath(os.path.expanduser(path))
  if not epath.Path(path).exists():
    raise PretrainedError(f"{path} does not exist.")
  loaded = _from_folder(path, step) if is_exported_folder(path) else _from_model_dir(path, step)
  if getattr(loaded.config, "scan_layers", False):
    loaded.config = dataclasses.replace(loaded.config, scan_layers=False)
  loaded.config = loaded.config.runnable_on(jax.default_backend())
  loaded.feature_lengths = _checked_lengths({**loaded.feature_lengths, **(feature_lengths or {})},
                                            loaded.config, path)
  size = loaded.seqio_vocabulary().vocab_size
  if size > loaded.config.vocab_size:
    raise PretrainedError(f"{path}: the vocabulary has {size} ids but the model's embedding "
                          f"only {loaded.config.vocab_size}.")
  return loaded


def _from_model_dir(path: str, step: Step) -> Pretrained:
  stored = open_checkpoint(path, step)
  vocabulary = stored.vocabulary
  if not vocabulary:
    raise PretrainedError(f"{stored.path} records no vocabulary, so no text can be encoded "
                          "for it; a training run records it when it starts.")
  if vocabulary.get("kind") not in ("sentencepiece", "byte"):
    raise PretrainedError(f"{stored.path}: vocabulary kind {vocabulary.get('kind')!r} cannot "
                          "encode text here; usable: 'sentencepiece', 'byte'.")
  run = stored.trained_on
  return Pretrained(source=stored.path, config=stored.config, params=stored.params(),
                    vocabulary=vocabulary, feature_lengths=_lengths(run, stored.config),
                    task=run.get("mixture_or_task_name"), step=stored.step)


def _from_folder(path: str, step: Step) -> Pretrained:
  if step != "latest":
    raise PretrainedError(f"{path} is an exported folder, which holds one checkpoint: "
                          f"step {step!r} applies to a MODEL_DIR only.")
  try:
    record = json.loads((epath.Path(path) / "config.json").read_text())
  except ValueError as error:
    raise PretrainedError(f"{path}/config.json is not JSON: {error}") from None
  vocabulary = folder_vocabulary(path)   # before the (long) read of the weights
  imported = import_checkpoint(path)
  params = traverse_util.unflatten_dict(dict(imported.tensors()), sep="/")
  run = exported_run(record)
  return Pretrained(source=path, config=imported.config, params=params, vocabulary=vocabulary,
                    feature_lengths=_lengths(run, imported.config),
                    task=run.get("mixture_or_task_name"), step=run.get("step"))


def _lengths(run: Mapping[str, Any], config) -> dict[str, int]:
  recorded = run.get("task_feature_lengths") or {}
  lengths = {key: int(recorded.get(key) or default)
             for key, default in DEFAULT_FEATURE_LENGTHS.items()}
  if not recorded and getattr(config, "max_positions", None):
    # Learned positions: no longer sequence exists for the model.
    lengths = {key: min(value, config.max_positions) for key, value in lengths.items()}
  return lengths


def _checked_lengths(lengths: dict[str, int], config, path: str) -> dict[str, int]:
  limit = getattr(config, "max_positions", None)
  for key in DEFAULT_FEATURE_LENGTHS:
    value = lengths.get(key)
    if not isinstance(value, int) or value < 2:
      raise PretrainedError(f"feature length {key}={value!r}: at least 2 (a token and EOS).")
    if limit and value > limit:
      raise PretrainedError(f"{path}: feature length {key}={value} exceeds the model's "
                            f"{limit} learned positions.")
  return {key: lengths[key] for key in DEFAULT_FEATURE_LENGTHS}
