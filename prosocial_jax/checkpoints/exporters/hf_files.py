"""Hugging Face weight files written: `model.safetensors`, or shards plus their index.

The layout `from_pretrained` reads: one `model.safetensors` when the tensors fit
in `max_shard_bytes`, else `model-00001-of-0000N.safetensors` ... and
`model.safetensors.index.json` ({"metadata": {"total_size"}, "weight_map":
{name: file}}). Tensors are written as float32 with the metadata
{"format": "pt"} that transformers checks for. A tensor larger than the limit
gets a shard of its own (as transformers does); none is ever split.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

import numpy as np
from etils import epath

SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"
DEFAULT_MAX_SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size, "5GB"


def _shards(tensors: Mapping[str, np.ndarray], max_shard_bytes: int) -> list[list[str]]:
  shards: list[list[str]] = [[]]
  size = 0
  for name, array in tensors.items():
    if shards[-1] and size + array.nbytes > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(name)
    size += array.nbytes
  return shards


def write_safetensors(tensors: Mapping[str, np.ndarray], output_dir: str, *,
                      max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[str]:
  """Writes `tensors` (Hugging Face name -> array) into `output_dir`; returns the file
  names written (index last)."""
  from safetensors.numpy import save, save_file  # pylint: disable=import-outside-toplevel

  if max_shard_bytes <= 0:
    raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
  arrays = {name: np.ascontiguousarray(array, np.float32) for name, array in tensors.items()}
  shards = _shards(arrays, max_shard_bytes)
  directory = epath.Path(output_dir)
  remote = "://" in str(output_dir)

  def write(names: list[str], file: str) -> None:
    chunk = {n: arrays[n] for n in names}
    if remote:  # safetensors writes local paths only
      (directory / file).write_bytes(save(chunk, metadata={"format": "pt"}))
    else:
      path = os.path.join(str(directory), file)
      save_file(chunk, path, metadata={"format": "pt"})
      # safetensors creates its files owner-only (0600); the folder's other files follow
      # the umask, and a serving container or a colleague must be able to read the weights.
      umask = os.umask(0)
      os.umask(umask)
      os.chmod(path, 0o666 & ~umask)

  if len(shards) == 1:
    write(shards[0], SINGLE)
    return [SINGLE]
  files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
  weight_map = {}
  for names, file in zip(shards, files):
    write(names, file)
    weight_map.update({name: file for name in names})
  index = {"metadata": {"total_size": int(sum(a.nbytes for a in arrays.values()))},
           "weight_map": dict(sorted(weight_map.items()))}
  (directory / INDEX).write_text(json.dumps(index, indent=2) + "\n")
  return files + [INDEX]
