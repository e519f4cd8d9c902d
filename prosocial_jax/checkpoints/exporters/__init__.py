"""Our checkpoints as Hugging Face model folders (`python -m prosocial_jax.export`).

    family  Hugging Face class                        module
    t5      T5ForConditionalGeneration (v1.0, v1.1)   hf_t5.py
    prost   BlenderbotForConditionalGeneration         hf_blenderbot.py

A folder holds `config.json` (with the run's task and feature lengths under
`prosocial_jax`, see `run_record`), `generation_config.json`, `model.safetensors`
(sharded with `model.safetensors.index.json` above `max_shard_bytes`;
hf_files.py), the tokenizer of the run's vocabulary (tokenizer.py) and a model
card (`README.md`, model_card.py), so `AutoTokenizer.from_pretrained(DIR)` and
`AutoModelForSeq2SeqLM.from_pretrained(DIR)` load it with no other argument.

Each family module has `hf_config(config, special_ids) -> dict` (config.json),
`generation_config(config, special_ids) -> dict` and `hf_tensors(flat, config)`:
our unscanned parameters ('encoder/layers_0/...' -> float32 numpy) -> Hugging Face
names and layouts, every parameter placed exactly once (the name tables are the
importers', read in the other direction).
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any, Callable, Optional

from etils import epath
from flax import traverse_util

from prosocial_jax.checkpoints.exporters import hf_files, model_card, tokenizer
from prosocial_jax.checkpoints.exporters.errors import ExportError
from prosocial_jax.checkpoints.stored import RUN_KEY, StoredCheckpoint, Step, open_checkpoint
from prosocial_jax.models.registry import config_to_dict

# our model family -> its exporter module
FAMILIES = {"t5": "hf_t5", "prost": "hf_blenderbot"}


def family_module(config):
  family = config_to_dict(config)["family"]
  if family not in FAMILIES:
    raise ExportError(f"Model family {family!r} has no Hugging Face counterpart here; "
                      f"exportable: {sorted(FAMILIES)}.")
  return importlib.import_module(f"prosocial_jax.checkpoints.exporters.{FAMILIES[family]}")


def check_output_dir(output_dir: str, overwrite: bool) -> None:
  """An existing, non-empty `output_dir` is left alone unless `overwrite`."""
  directory = epath.Path(output_dir)
  if directory.exists() and not directory.is_dir():
    raise ExportError(f"Output {output_dir} exists and is not a folder.")
  if directory.exists() and any(directory.iterdir()) and not overwrite:
    names = sorted(p.name for p in directory.iterdir())
    raise ExportError(f"Output folder {output_dir} is not empty ({', '.join(names[:5])}"
                      f"{', ...' if len(names) > 5 else ''}); choose another, or --overwrite.")


def export_checkpoint(model_dir: str, output_dir: str, *, step: Step = "latest",
                      overwrite: bool = False,
                      max_shard_bytes: int = hf_files.DEFAULT_MAX_SHARD_BYTES,
                      progress: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
  """Writes MODEL_DIR's checkpoint at `step` as a Hugging Face folder `output_dir`;
  returns a summary (step, files, parameter count)."""
  say = progress or (lambda message: None)
  check_output_dir(output_dir, overwrite)  # before the (long) read
  stored = open_checkpoint(model_dir, step)
  module = family_module(stored.config)
  tokenizer.check_vocabulary(stored.vocabulary, stored.config, checkpoint=stored.path)
  say(f"Exporting {stored.path} ({type(stored.config).__name__}) to {output_dir}")
  flat = traverse_util.flatten_dict(stored.params(unscanned=True), sep="/")
  tensors = dict(module.hf_tensors(flat, stored.config))  # refuses before anything is written
  ours = sum(int(x.size) for x in flat.values())
  del flat
  # Written into a sibling folder first and moved into place at the end, so a refusal or
  # a crash never leaves a half-written model where a complete one is expected (gs:// has
  # no rename: there the files are written in place).
  remote = "://" in output_dir
  target = epath.Path(output_dir)
  staging = target if remote else target.parent / f".{target.name}.partial"
  if staging.exists():
    staging.rmtree()
  staging.mkdir(parents=True)
  try:
    lengths = stored.trained_on.get("task_feature_lengths") or {}
    special_ids = tokenizer.write_tokenizer(stored.vocabulary, str(staging), stored.config,
                                            checkpoint=stored.path,
                                            inputs_length=lengths.get("inputs"))
    _write_json(staging / "config.json",
                {**module.hf_config(stored.config, special_ids), **run_record(stored)})
    _write_json(staging / "generation_config.json",
                module.generation_config(stored.config, special_ids))
    files = hf_files.write_safetensors(tensors, str(staging), max_shard_bytes=max_shard_bytes)
    model_card.write_model_card(stored, str(staging))
  except BaseException:
    if not remote:
      staging.rmtree()
    raise
  if not remote:
    if target.exists():
      target.rmtree()
    os.replace(staging, target)
  count = sum(int(t.size) for t in tensors.values())
  # BlenderBot's class has a zero `final_logits_bias` that Prost has not: said, so the
  # count is not taken for another model's.
  besides = (f": the model's {ours:,} and {count - ours:,} zeros the Hugging Face class has "
             "besides" if count > ours else "")
  say(f"Wrote {len(tensors)} tensors ({count:,} parameters{besides}) in {', '.join(files)}")
  return {"step": stored.step, "files": sorted(p.name for p in target.iterdir()),
          "parameters": count}


def run_record(stored: StoredCheckpoint) -> dict[str, Any]:
  """{RUN_KEY: the task or mixture and feature lengths the run trained on}, for
  config.json ({} when the checkpoint records no input, e.g. a converted one): our
  inference tools read it back to build inputs exactly as the tasks did; transformers
  keeps such an extra key as a config attribute."""
  run = stored.trained_on
  if not run.get("task_feature_lengths"):
    return {}
  return {RUN_KEY: {"mixture_or_task_name": run.get("mixture_or_task_name"),
                    "task_feature_lengths": dict(run["task_feature_lengths"]),
                    "step": stored.step}}


def _write_json(path: epath.Path, record: dict[str, Any]) -> None:
  path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


__all__ = ["ExportError", "FAMILIES", "RUN_KEY", "StoredCheckpoint", "export_checkpoint",
           "family_module", "run_record"]
