"""Taking the data files out of a release archive (tar, tar.gz, tgz or zip)."""

from __future__ import annotations

import os
import re
import tarfile
import zipfile
from typing import BinaryIO, Callable, Iterator

import tensorflow as tf


def _members(path: str) -> Iterator[tuple[str, Callable[[], BinaryIO]]]:
  """(member name, opener) for every regular file in the archive."""
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
      for info in archive.infolist():
        if not info.is_dir():
          yield info.filename, (lambda info=info: archive.open(info))
    return
  try:
    archive = tarfile.open(path)
  except tarfile.TarError as e:
    raise ValueError(f"{path}: not a tar or zip archive ({e})") from None
  with archive:
    for member in archive:
      if member.isfile():
        yield member.name, (lambda member=member: archive.extractfile(member))


def extract(path: str, keep: str, out_dir: str) -> list[str]:
  """Writes the members whose file name matches the regex `keep` into `out_dir` (flat).

  Only the base name is used, so no member can write outside `out_dir`. Returns
  the written paths; raises ValueError when nothing matches or two members share
  a name.
  """
  pattern = re.compile(keep)
  written: dict[str, str] = {}
  seen = []
  for name, opener in _members(path):
    base = os.path.basename(name)
    seen.append(name)
    if not pattern.search(base):
      continue
    if base in written:
      raise ValueError(f"{path}: two members named {base} ({written[base]} and {name})")
    target = os.path.join(out_dir, base)
    src: BinaryIO = opener()
    with src, tf.io.gfile.GFile(target + ".tmp", "wb") as out:
      while chunk := src.read(1 << 20):
        out.write(chunk)
    tf.io.gfile.rename(target + ".tmp", target, overwrite=True)
    written[base] = name
  if not written:
    raise ValueError(f"{path}: no member matches {keep!r}; members: {seen[:20]}")
  return [os.path.join(out_dir, base) for base in sorted(written)]
