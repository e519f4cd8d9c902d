"""Importers of outside checkpoints: one module per format, each found by its files.

    hf_t5          Hugging Face T5ForConditionalGeneration (v1.0 and v1.1)      hf_t5.py
    hf_blenderbot  Hugging Face BlenderbotForConditionalGeneration (Prost)      hf_blenderbot.py
    t5x            T5X, legacy msgpack + zarr and orbax layouts                  t5x.py
    mesh_tf        Mesh-TensorFlow T5 (original T5, Delphi)                      mesh_tf.py

Each module has `NAME`, `detect(path) -> bool` and `read(path, config=None) -> Imported`
(base.py); one with `READS_SCANNED = True` places tensors for a config that scans its
layers itself, the others are read unscanned and stacked here (`base.stack_layers`).
`python -m prosocial_jax.convert` and INITIAL_CHECKPOINT_PATH use them.

No importer unpickles an arbitrary object: a ParlAI checkpoint or a lone pickle is
refused with what to do instead (pickles.py), and a Hugging Face `pytorch_model.bin`
is read with `torch.load(weights_only=True)`; safetensors is preferred when both are
there (hf_weights.py).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from etils import epath

from prosocial_jax.checkpoints.importers.base import CheckpointImportError, Imported, stack_layers
from prosocial_jax.checkpoints.importers.pickles import refuse_pickles

FORMATS = ("hf_t5", "hf_blenderbot", "t5x", "mesh_tf")


def _module(name: str):
  if name not in FORMATS:
    raise CheckpointImportError(f"Unknown checkpoint format {name!r}; known: {FORMATS}")
  return importlib.import_module(f"prosocial_jax.checkpoints.importers.{name}")


def detect_format(path: str) -> str:
  """The format of the checkpoint at `path`, from its files."""
  found = [name for name in FORMATS if _module(name).detect(epath.Path(path))]
  if len(found) != 1:
    raise CheckpointImportError(
        f"Cannot tell the format of {path}: " +
        (f"it looks like several ({', '.join(found)})" if found else
         "no Hugging Face config.json + weights, T5X checkpoint, or TensorFlow checkpoint "
         "index found") + "; pass the format explicitly.")
  return found[0]


def import_checkpoint(path: str, format: str = "auto", config: Any = None) -> Imported:
  """Reads `path` (local or gs://) in `format` ("auto": detected) into our names.

  `config`: our model config when the source does not carry one (T5X, Mesh-TF:
  a `gin/models/...` file), or to check it against the source's."""
  if not epath.Path(path).exists():
    raise CheckpointImportError(f"Checkpoint {path} does not exist.")
  refuse_pickles(path)
  name = detect_format(path) if format == "auto" else format
  module = _module(name)
  if getattr(config, "scan_layers", False) and not getattr(module, "READS_SCANNED", False):
    plain = module.read(path, config=dataclasses.replace(config, scan_layers=False))
    return stack_layers(plain, config)
  return module.read(path, config=config)


__all__ = ["FORMATS", "CheckpointImportError", "Imported", "detect_format", "import_checkpoint"]
