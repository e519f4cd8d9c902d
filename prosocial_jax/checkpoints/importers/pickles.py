"""Checkpoints that are pickles we will not open: refused before any byte is unpickled.

Unpickling runs whatever code the file names, so no importer unpickles an arbitrary
object. What reaches PyTorch at all is a Hugging Face folder's `pytorch_model.bin`,
read with `torch.load(weights_only=True)` (tensors and plain containers only;
hf_weights.py). Refused here, with what to do instead:

* a ParlAI checkpoint (`model` beside `model.opt` / `model.dict`, as in ParlAI's zoo,
  e.g. BlenderBot's `blender_3B/`): a pickle of a whole training state, in ParlAI's
  own layout. Its Hugging Face conversion (facebook/blenderbot-3B for Prost's
  architecture) is what the `hf_blenderbot` importer reads.
* a lone pickle or PyTorch file given as the path (`*.pt`, `*.pth`, `*.bin`, `*.pkl`,
  `*.ckpt`, or any file whose bytes start like one): importers read a folder.
"""

from __future__ import annotations

from typing import Optional

from etils import epath

from prosocial_jax.checkpoints.importers.base import CheckpointImportError

# ParlAI's zoo keeps these beside its `model` file.
_PARLAI_SIDECARS = (".opt", ".dict")
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".checkpoint")
_ZIP = b"PK\x03\x04"  # torch.save's zip archive (a pickle inside)

_CONVERT = ("Use its Hugging Face conversion instead (for BlenderBot 2.7B, Prost's "
            "architecture: facebook/blenderbot-3B, read by the hf_blenderbot importer), or, "
            "where you trust the file, convert it yourself in an environment of its own "
            "(transformers' convert_blenderbot_original_pytorch_checkpoint_to_pytorch.py) "
            "and save with safetensors.")


def _parlai_model_file(path: epath.Path) -> Optional[epath.Path]:
  """ParlAI's `model` file at or inside `path`, when its sidecar files say it is one."""
  candidates = [path] if path.is_file() else [path / "model", *path.glob("*.checkpoint")]
  for candidate in candidates:
    if candidate.is_file() and any(
        epath.Path(f"{candidate}{suffix}").exists() for suffix in _PARLAI_SIDECARS):
      return candidate
  return None


def _looks_pickled(path: epath.Path) -> bool:
  if path.name.lower().endswith(_PICKLE_SUFFIXES):
    return True
  with path.open("rb") as f:
    head = f.read(4)
  # A pickle of protocol 2 or later starts with PROTO (0x80) and its version.
  return head == _ZIP or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))


def refuse_pickles(path: str) -> None:
  """Raises CheckpointImportError, saying why and what to do, when `path` is a ParlAI
  checkpoint or a lone pickle / PyTorch file; returns for anything else."""
  where = epath.Path(path)
  parlai = _parlai_model_file(where)
  if parlai is not None:
    raise CheckpointImportError(
        f"{parlai} is a ParlAI checkpoint (a pickled training state beside "
        f"{parlai.name}.opt): it is not read, since unpickling it could run arbitrary code "
        f"and its layout is ParlAI's own. {_CONVERT}")
  if where.is_file() and _looks_pickled(where):
    raise CheckpointImportError(
        f"{where} is a single pickle / PyTorch file: it is not unpickled (that could run "
        "arbitrary code). Importers read a folder: a Hugging Face model (config.json with "
        "model.safetensors, or pytorch_model.bin, read with torch.load(weights_only=True)), "
        "a T5X or a Mesh-TensorFlow checkpoint.")
