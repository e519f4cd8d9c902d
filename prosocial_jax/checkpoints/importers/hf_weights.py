"""Hugging Face weight files, read one tensor at a time: safetensors and PyTorch `.bin`.

A model directory holds one of (looked for in this order, as transformers does):
  model.safetensors    model.safetensors.index.json + shards
  pytorch_model.bin    pytorch_model.bin.index.json + shards

safetensors is read with a small reader of its documented layout (8-byte
header length, JSON header of dtype / shape / byte offsets, raw little-endian
data) rather than `safetensors.safe_open`: safe_open's numpy backend cannot
return bfloat16 tensors (`data type 'bfloat16' not understood`), and its
other backends need PyTorch or put arrays on an accelerator. The reader maps
local files (only the pages of the tensor being read are touched) and reads
remote ones (`gs://...`) by seeking to the tensor's bytes, so nothing is
copied and memory holds one tensor at a time.

`.bin` files are PyTorch pickles, read with `torch.load(weights_only=True)`
(no code runs) and memory-mapped when local; a remote `.bin` is first copied
whole to a local temporary folder (deleted when the reader is), since
`torch.load` needs a seekable local file: prefer safetensors on gs://.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
import struct
import tempfile
import weakref
from typing import Iterator, Optional

import ml_dtypes
import numpy as np
from etils import epath

from prosocial_jax.checkpoints.importers.base import CheckpointImportError

SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
TORCH, TORCH_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"

_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                       "BF16": ml_dtypes.bfloat16}
_MAX_HEADER = 100 << 20  # the format's own limit on the JSON header


def is_remote(path: epath.Path) -> bool:
  return "://" in str(path) and not str(path).startswith("file://")


def weights_file(path: epath.Path) -> Optional[epath.Path]:
  """The weights (or index) file a model directory `path` is read from, or None."""
  for name in (SAFETENSORS, SAFETENSORS_INDEX, TORCH, TORCH_INDEX):  # transformers' order
    if (path / name).exists():
      return path / name
  return None


class _SafetensorsFile:
  """One .safetensors file: its header now, a tensor's bytes when asked."""

  def __init__(self, path: epath.Path):
    self.path = path
    with path.open("rb") as f:
      prefix = f.read(8)
      size = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
      if not 0 < size <= _MAX_HEADER:
        raise CheckpointImportError(f"{path} is not a safetensors file (bad header length).")
      try:
        header = json.loads(f.read(size))
      except ValueError as error:
        raise CheckpointImportError(f"{path}: unreadable safetensors header ({error}).")
    header.pop("__metadata__", None)
    self._data_start = 8 + size
    self.entries = {}  # name -> (dtype, shape, begin, end), in file order
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
      dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
      if dtype not in _SAFETENSORS_DTYPES:
        raise CheckpointImportError(
            f"{name} in {path} has dtype {dtype}; floating-point weights (F32, F16, BF16, "
            "F64) are expected.")
      if end - begin != math.prod(shape) * np.dtype(_SAFETENSORS_DTYPES[dtype]).itemsize:
        raise CheckpointImportError(
            f"{name} in {path}: {end - begin} bytes do not hold a {dtype} tensor of shape "
            f"{list(shape)}.")
      self.entries[name] = (dtype, shape, begin, end)
    end = max((entry[3] for entry in self.entries.values()), default=0)
    length = path.stat().length
    if self._data_start + end > length:  # a truncated download, say
      raise CheckpointImportError(f"{path} ends before its last tensor: {length} bytes, the "
                                  f"header needs {self._data_start + end}.")

  def shape(self, name: str) -> tuple[int, ...]:
    return self.entries[name][1]

  def dtype(self, name: str) -> str:
    return self.entries[name][0]

  def read(self, name: str) -> np.ndarray:
    dtype, shape, begin, end = self.entries[name]
    dtype = np.dtype(_SAFETENSORS_DTYPES[dtype])  # little-endian, as every host we run on
    if end == begin:
      return np.zeros(shape, np.float32)
    if is_remote(self.path):
      with self.path.open("rb") as f:
        f.seek(self._data_start + begin)
        data = f.read(end - begin)
      if len(data) != end - begin:
        raise CheckpointImportError(f"{name} in {self.path}: the file ends inside the tensor.")
      array = np.frombuffer(data, dtype)
    else:
      array = np.memmap(str(self.path), dtype=dtype, mode="r",
                        offset=self._data_start + begin, shape=(math.prod(shape),))
    # Always a copy (even from float32): the mapping then closes with this call.
    return np.array(array.reshape(shape), np.float32, copy=True)

  def release(self) -> None:
    pass


def _torch():
  try:
    import torch
  except ImportError:
    raise CheckpointImportError(
        "Reading pytorch_model.bin needs PyTorch (pip install torch); or convert the "
        "checkpoint to safetensors.") from None
  return torch


# torch dtypes by safetensors' names, so both kinds of file report alike.
_TORCH_DTYPES = {"torch.float32": "F32", "torch.float16": "F16", "torch.bfloat16": "BF16",
                 "torch.float64": "F64"}


class _TorchFile:
  """One PyTorch .bin: loaded (memory-mapped when possible) while its tensors are read."""

  def __init__(self, path: epath.Path, local_copies: list):
    self.path = path
    self._local_copies = local_copies  # temporary folders of remote files, owned by the reader
    self._local: Optional[str] = None
    self._state: Optional[dict] = None
    state = self._load()
    self.entries = {name: tuple(tensor.shape) for name, tensor in state.items()}
    self._dtypes = {name: _TORCH_DTYPES.get(str(tensor.dtype), str(tensor.dtype))
                    for name, tensor in state.items()}
    self.release()

  def _load(self) -> dict:
    if self._state is not None:
      return self._state
    torch = _torch()
    if self._local is None:
      if is_remote(self.path):
        folder = tempfile.mkdtemp(prefix="prosocial_jax_import_")
        self._local_copies.append(folder)
        self._local = f"{folder}/{self.path.name}"
        self.path.copy(epath.Path(self._local))
      else:
        self._local = str(self.path)
    try:
      try:
        state = torch.load(self._local, map_location="cpu", weights_only=True, mmap=True)
      except RuntimeError:  # files of torch < 1.6 cannot be mapped: read whole
        state = torch.load(self._local, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only refused something in the file
      raise CheckpointImportError(
          f"Cannot read {self.path} as a PyTorch state dict with weights_only=True: it holds "
          f"pickled Python objects besides tensors ({_refused_object(error)}), and unpickling "
          "them could run arbitrary code, so it is not opened. Use the model's safetensors "
          "files, or, where you trust this file, convert it to safetensors yourself.") from None
    except Exception as error:  # a corrupt or truncated archive
      raise CheckpointImportError(f"Cannot read {self.path} as a PyTorch state dict with "
                                  f"weights_only=True: {error}") from None
    if not isinstance(state, dict):
      raise CheckpointImportError(f"{self.path} holds a {type(state).__name__}, not a state dict.")
    if isinstance(state.get("model"), dict) and not any(
        isinstance(v, torch.Tensor) for v in state.values()):
      raise CheckpointImportError(
          f"{self.path} holds a training checkpoint (keys {sorted(state)[:6]}: ParlAI's "
          "layout, say), not a state dict of tensors; save the model's state_dict (or its "
          "Hugging Face conversion) instead.")
    for name, tensor in state.items():
      if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise CheckpointImportError(
            f"{name} in {self.path} is {getattr(tensor, 'dtype', type(tensor).__name__)}; "
            "floating-point weights are expected.")
    self._state = state
    return state

  def shape(self, name: str) -> tuple[int, ...]:
    return self.entries[name]

  def dtype(self, name: str) -> str:
    return self._dtypes[name]

  def read(self, name: str) -> np.ndarray:
    tensor = self._load()[name].detach()
    return np.array(tensor.float().numpy(), np.float32)  # a copy: the file may be unmapped

  def release(self) -> None:
    self._state = None


def _refused_object(error: Exception) -> str:
  """What torch's weights_only refusal names ("GLOBAL posix.system", "Unsupported operand
  149"), without its advice to retry unsafely or to allowlist the object."""
  text = str(error)
  found = re.search(r"GLOBAL [\w.]+", text) or re.search(r"Unsupported operand \d+", text)
  return found.group(0) if found else type(error).__name__


def _remove(folders: list) -> None:
  for folder in folders:
    shutil.rmtree(folder, ignore_errors=True)


class WeightFiles:
  """The tensors of a Hugging Face model directory, by their names there.

  `names()` in file order; `file(name)` for messages; `shape(name)` and
  `dtype(name)` without reading data; `read(name)` as float32 (from f32, f16, bf16 or f64), one at a time.
  """

  def __init__(self, directory: epath.Path):
    found = weights_file(directory)
    if found is None:
      raise CheckpointImportError(
          f"{directory} holds no {SAFETENSORS}, {SAFETENSORS_INDEX}, {TORCH} or {TORCH_INDEX}.")
    self.source = found
    self._local_copies: list = []
    weakref.finalize(self, _remove, self._local_copies)
    files = [found]
    if found.name.endswith(".index.json"):
      files = self._shards(found)
    make = _SafetensorsFile if ".safetensors" in found.name else (
        lambda p: _TorchFile(p, self._local_copies))
    self._files = [make(f) for f in files]
    self._where: dict[str, object] = {}
    for weights in self._files:
      for name in weights.entries:
        if name in self._where:
          raise CheckpointImportError(f"{name} is in both {self._where[name].path} and "
                                      f"{weights.path}.")
        self._where[name] = weights
    if found.name.endswith(".index.json"):
      self._check_index(found)
    self._current = None

  def _shards(self, index: epath.Path) -> list[epath.Path]:
    try:
      self._index = json.loads(index.read_text())["weight_map"]
    except (ValueError, KeyError, TypeError) as error:
      raise CheckpointImportError(f"{index}: no readable weight_map ({error}).")
    return [index.parent / name for name in dict.fromkeys(self._index.values())]

  def _check_index(self, index: epath.Path) -> None:
    for name, shard in self._index.items():
      holder = self._where.get(name)
      if holder is None or holder.path.name != shard:
        raise CheckpointImportError(f"{index} places {name} in {shard}, but "
                                    + (f"it is in {holder.path}." if holder else "no shard has it."))

  def names(self) -> Iterator[str]:
    for weights in self._files:
      yield from weights.entries

  def __contains__(self, name: str) -> bool:
    return name in self._where

  def file(self, name: str) -> str:
    return str(self._where[name].path)

  def shape(self, name: str) -> tuple[int, ...]:
    return self._where[name].shape(name)

  def dtype(self, name: str) -> str:
    """The stored dtype, by safetensors' names ("F32", "F16", "BF16", "F64")."""
    return self._where[name].dtype(name)

  def read(self, name: str) -> np.ndarray:
    weights = self._where[name]
    if self._current is not None and self._current is not weights:
      self._current.release()  # one .bin shard loaded at a time
    self._current = weights
    return weights.read(name)

  def release(self) -> None:
    if self._current is not None:
      self._current.release()
      self._current = None
