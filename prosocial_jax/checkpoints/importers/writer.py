"""An imported checkpoint written as one of ours (the work of `python -m prosocial_jax.convert`).

DIR/checkpoint_0/state   orbax PyTree of {"params": ...}: float32, uncompressed
DIR/checkpoint_0/meta    JSON: model_config, param_shapes, vocabulary, code, imported_from
DIR/vocabulary/          the checkpoint's SentencePiece model, when it ships one

so that INITIAL_CHECKPOINT_PATH=DIR (`training.initial_checkpoint`), and every
reader of our checkpoints (`Checkpointer.read_meta` / `restore_params`), take it
like a checkpoint a run wrote at step 0. Every parameter the config's model has
is checked, by name and shape, before anything is written.

Memory: the source streams one tensor at a time, but orbax saves a tree, so the
whole parameter tree (float32) is held on the writing host before the save:
about 4 bytes per parameter (T5-large 3 GB, T5-11B ~45 GB), plus a few copies
of the tensor in flight (T5-11B's largest, an MLP kernel, is 0.27 GB).
Measured on a T5 v1.1-base shape (248M parameters, 0.99 GB of safetensors):
peak RSS 1.24 GB above the process's baseline. Two orbax habits would double
that and are avoided: given numpy arrays it first copies the whole tree (so the
tree holds jax.Arrays on the host CPU), and compressing holds a compressed copy
of it (so the state is saved uncompressed, ~7% more disk).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Mapping, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util
from etils import epath

from prosocial_jax import version
from prosocial_jax.checkpoints.assets import VOCABULARY_DIR, record_vocabulary
from prosocial_jax.checkpoints.compatibility import vocabulary_record
from prosocial_jax.checkpoints.importers.base import (CheckpointImportError, Imported,
                                                      expected_param_shapes)
from prosocial_jax.checkpoints.manager import STEP_PREFIX
from prosocial_jax.checkpoints.stored import exported_run
from prosocial_jax.models.registry import config_to_dict

STEP = 0
# (tensors done, tensors in all, bytes done) after each tensor.
Progress = Callable[[int, int, int], None]


def _host():
  try:
    return jax.local_devices(backend="cpu")[0]
  except RuntimeError:  # JAX_PLATFORMS without cpu: the default device
    return None


def gather_params(imported: Imported, expected: Mapping[str, tuple[int, ...]],
                  progress: Optional[Progress] = None) -> dict[str, Any]:
  """The imported tensors as our nested parameter tree (float32 jax.Arrays on the host
  CPU), each one checked against `expected` (name -> shape): none missing, none extra,
  none twice, no other shape."""
  where = f"{imported.source} ({imported.format})"
  flat: dict[str, np.ndarray] = {}
  done_bytes = 0
  for name, array in imported.tensors():
    if name in flat:
      raise CheckpointImportError(f"{where} gave {name} twice.")
    if name not in expected:
      raise CheckpointImportError(f"{where} gave {name}, which the model has no parameter for.")
    if tuple(array.shape) != tuple(expected[name]):
      raise CheckpointImportError(f"{where} gave {name} of shape {list(array.shape)}; the "
                                  f"model's is {list(expected[name])}.")
    # A jax.Array on the host, the numpy array dropped: orbax saves jax.Arrays without
    # copying them, but copies a whole tree of numpy arrays first (measured: ~2x more).
    flat[name] = jax.device_put(np.asarray(array, np.float32), _host())
    del array
    done_bytes += flat[name].nbytes
    if progress is not None:
      progress(len(flat), len(expected), done_bytes)
  missing = sorted(set(expected) - set(flat))
  if missing:
    raise CheckpointImportError(
        f"{where} has no value for {len(missing)} parameters of the model: "
        + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
  return traverse_util.unflatten_dict(flat, sep="/")


def _our_entries(directory: epath.Path) -> tuple[list[epath.Path], list[epath.Path]]:
  """(what a conversion writes, anything else) among `directory`'s entries."""
  ours, others = [], []
  for entry in directory.iterdir():
    mine = re.fullmatch(rf"{STEP_PREFIX}_\d+", entry.name) or entry.name == VOCABULARY_DIR
    (ours if mine else others).append(entry)
  return ours, others


def check_output_dir(output_dir: str, overwrite: bool) -> None:
  """Refuses a non-empty `output_dir` unless `overwrite`; even then, only the checkpoints
  and vocabulary/ of an earlier conversion or run are replaced, never other files."""
  directory = epath.Path(output_dir)
  if not directory.exists():
    return
  if not directory.is_dir():
    raise CheckpointImportError(f"Output {output_dir} exists and is not a folder.")
  ours, others = _our_entries(directory)
  if (ours or others) and not overwrite:
    names = sorted(e.name for e in ours + others)
    raise CheckpointImportError(
        f"Output folder {output_dir} is not empty ({', '.join(names[:5])}"
        f"{', ...' if len(names) > 5 else ''}); choose an empty one, or --overwrite to replace "
        "the checkpoints in it.")
  if others:
    raise CheckpointImportError(
        f"Output folder {output_dir} holds other files than checkpoints "
        f"({', '.join(sorted(e.name for e in others)[:5])}): overwriting replaces only "
        f"{STEP_PREFIX}_<step>/ and {VOCABULARY_DIR}/; choose another folder.")


def _vocabulary(imported: Imported, output_dir: str) -> dict[str, Any]:
  """Copies the checkpoint's vocabulary into output_dir and returns its record, the
  same one the trainer computes for that vocabulary (so runs compare equal)."""
  vocabulary = imported.vocabulary
  if not vocabulary:
    return {}
  if vocabulary.get("kind") != "sentencepiece":
    raise CheckpointImportError(f"Unknown vocabulary kind {vocabulary.get('kind')!r} from "
                                f"{imported.source}.")
  import seqio  # heavy (TensorFlow): only when there is a vocabulary to record
  copy = record_vocabulary(output_dir, vocabulary["source"])
  try:
    return vocabulary_record(
        seqio.SentencePieceVocabulary(copy, extra_ids=int(vocabulary.get("extra_ids", 0))))
  except Exception as error:  # sentencepiece's own errors: a corrupt model file
    raise CheckpointImportError(f"{vocabulary['source']} is not a readable SentencePiece "
                                f"model: {error}") from None


def write_checkpoint(imported: Imported, output_dir: str, *, overwrite: bool = False,
                     progress: Optional[Progress] = None) -> dict[str, Any]:
  """Writes `imported` as our checkpoint at step 0 in `output_dir`; returns its meta."""
  output_dir = output_dir if "://" in output_dir else os.path.abspath(
      os.path.expanduser(output_dir))
  check_output_dir(output_dir, overwrite)  # before the (long) read
  expected = expected_param_shapes(imported.config)
  params = gather_params(imported, expected, progress)
  if epath.Path(output_dir).exists():
    for entry in _our_entries(epath.Path(output_dir))[0]:
      entry.rmtree()
  meta = {"model_config": config_to_dict(imported.config),
          "param_shapes": {name: list(shape) for name, shape in expected.items()},
          "vocabulary": _vocabulary(imported, output_dir),
          "code": version.code_record(),
          "imported_from": {"format": imported.format, "source": imported.source}}
  trained_on = _trained_on(imported.source)
  if trained_on:
    meta["trained_on"] = trained_on
  _save(output_dir, params, meta)
  return meta


def _trained_on(source: str) -> dict[str, Any] | None:
  """What an export of ours records in its config.json (`stored.exported_run`: the task and
  feature lengths its run trained on), so that `eval` and the inference tools need no
  flags for the converted checkpoint either; None for anyone else's checkpoint."""
  path = epath.Path(source) / "config.json"
  try:
    record = json.loads(path.read_text()) if path.is_file() else {}
  except (ValueError, OSError):
    return None
  run = exported_run(record)
  return run if isinstance(run.get("task_feature_lengths"), dict) else None


def _save(output_dir: str, params, meta: Mapping[str, Any]) -> None:
  # The layout `manager.Checkpointer` writes and reads (checkpoint_<step>/{state,meta}),
  # with the state saved uncompressed: tensorstore's compression holds a compressed copy
  # of the whole tree before writing (measured: +0.8x the parameter bytes at the peak),
  # for ~7% less disk, since trained float weights barely compress.
  options = ocp.CheckpointManagerOptions(step_prefix=STEP_PREFIX, create=True,
                                         enable_async_checkpointing=False)
  manager = ocp.CheckpointManager(
      epath.Path(output_dir), options=options,
      item_handlers={"state": ocp.PyTreeCheckpointHandler(use_compression=False),
                     "meta": ocp.JsonCheckpointHandler()})
  try:
    manager.save(STEP, args=ocp.args.Composite(state=ocp.args.PyTreeSave({"params": params}),
                                               meta=ocp.args.JsonSave(dict(meta))))
  finally:
    manager.wait_until_finished()
    manager.close()
