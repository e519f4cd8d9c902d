"""Is the checkpoint in MODEL_DIR this run's model? Refuse, with reasons, when it is not.

A checkpoint's metadata records the model config, every parameter's shape and the
vocabulary's identity. Resuming is refused when any of them differs, except for
the config fields that only say how to run the same model (`RUN_SETTINGS`:
dropout, rematerialisation, the matmul and attention kernels, the embedding lookup),
which may change between runs and are logged. Each refusal names the parameter, config field or vocabulary.
To start a new run from another model's parameters, use INITIAL_CHECKPOINT_PATH.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import jax

from prosocial_jax.checkpoints.assets import file_sha256

# Config fields that change how the model runs, not what it computes.
RUN_SETTINGS = ("dropout_rate", "attention_dropout_rate", "remat_policy", "matmul",
                "attention_kernel", "one_hot_embedding")


class CheckpointMismatchError(ValueError):
  """The checkpoint in MODEL_DIR was written for another model or vocabulary."""


def param_shapes(params) -> dict[str, list[int]]:
  """{'encoder/layers_0/attention/query/kernel': [512, 384], ...}: stored in meta."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return {"/".join(str(getattr(k, "key", k)) for k in path): list(leaf.shape)
          for path, leaf in flat}


def vocabulary_record(vocabulary) -> dict[str, Any]:
  """A seqio vocabulary's identity: its kind, size, extra ids and, for SentencePiece,
  the model file and its sha256."""
  model_file = getattr(vocabulary, "sentencepiece_model_file", None) if not _is_byte(
      vocabulary) else None
  record = {"kind": "sentencepiece" if model_file else "byte",
            "vocab_size": int(vocabulary.vocab_size), "extra_ids": int(vocabulary.extra_ids)}
  if model_file:
    record.update(source=model_file, sha256=file_sha256(model_file))
  return record


def _is_byte(vocabulary) -> bool:
  import seqio
  resolved = getattr(vocabulary, "resolved", vocabulary)  # tasks' late-bound vocabulary
  return isinstance(resolved, seqio.ByteVocabulary)


def vocabulary_problems(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """Lines naming how two vocabulary records differ (none when either is unknown)."""
  if not saved or not current:
    return []
  saved = {"kind": "sentencepiece", **saved}  # records before 2026-11-30 had no kind
  describe = lambda v: (f"{v.get('source')} (sha256 {v['sha256'][:12]}…)"
                        if v.get("sha256") else f"the {v['kind']} vocabulary")
  if saved["kind"] != current["kind"] or (
      saved.get("sha256") and current.get("sha256") and saved["sha256"] != current["sha256"]):
    return [f"  vocabulary: checkpoint was trained with {describe(saved)}, "
            f"this run uses {describe(current)}"]
  return [f"  vocabulary {key}: checkpoint {saved[key]}, this run {current.get(key)}"
          for key in ("extra_ids", "vocab_size") if key in saved and saved[key] != current.get(key)]


def check_compatible(saved: Mapping[str, Any], current: Mapping[str, Any],
                     *, model_dir: str, step: int) -> None:
  """Refuses to resume into another model (shapes, config or vocabulary)."""
  problems = []
  saved_shapes = saved.get("param_shapes", {})
  current_shapes = current.get("param_shapes", {})
  if saved_shapes and saved_shapes != current_shapes:
    names = sorted(set(saved_shapes) | set(current_shapes))
    differing = [n for n in names if saved_shapes.get(n) != current_shapes.get(n)]
    for name in differing[:8]:
      problems.append(f"  {name}: checkpoint {saved_shapes.get(name, 'absent')}, "
                      f"this run {current_shapes.get(name, 'absent')}")
    if len(differing) > 8:
      problems.append(f"  ... and {len(differing) - 8} more parameters")
  saved_config, current_config = saved.get("model_config", {}), current.get("model_config", {})
  changed = [key for key in sorted(saved_config)
             if saved_config.get(key) != current_config.get(key)]
  lines = {key: f"  model_config.{key}: checkpoint has {saved_config.get(key)!r}, "
                f"this run has {current_config.get(key)!r}" for key in changed}
  problems += [lines[key] for key in changed if key not in RUN_SETTINGS]
  problems += vocabulary_problems(saved.get("vocabulary", {}), current.get("vocabulary", {}))
  if problems:
    problems += [lines[key] for key in changed if key in RUN_SETTINGS]
    raise CheckpointMismatchError(
        f"MODEL_DIR {model_dir} holds a checkpoint (step {step}) of another model "
        "than the one configured:\n" + "\n".join(problems) +
        "\nUse a new MODEL_DIR (with INITIAL_CHECKPOINT_PATH to start from these "
        "parameters), or configure the model that wrote this checkpoint.")
  if changed:
    logging.warning("Resuming with changed run settings of the same model:\n%s",
                    "\n".join(lines[key] for key in changed))
