"""`python -m prosocial_jax.data download <corpus>|all`: official releases into the data root.

Each corpus module declares its `Release` (URLs, published checksums, the archive
members to keep). `download` fetches those files into `<data root>/<corpus>/.download/`
(a hidden folder the readers pass over; for a gs:// data root, a local cache under
~/.cache/prosocial_jax/downloads), with progress, resuming, and a sha256 check where
one is published (ParlAI publishes checksums for the casual corpora it mirrors in its
`parlai/tasks/<corpus>/build.py`; GitHub files are fetched at a pinned commit, so theirs
are fixed too; where none is published the computed one is printed, to pin in your own
records). Archives are then unpacked: only the data files the reader needs are written,
flat, into `<data root>/<corpus>/`. Running it again skips what is already there.

Fetching one file: the bytes go to `<dest>.part` first; an interrupted download (a
dropped connection, a killed process) continues from there with an HTTP Range request —
within the same call (`retries`) or on the next run. Only a file whose checksum matches
(when one is known) is renamed to `dest`. `file://` URLs, local paths and `gs://` paths
are copied through tf.io.gfile, resuming the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import os
import re
import socket
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from typing import BinaryIO, Callable, Iterator, TextIO

import tensorflow as tf

from prosocial_jax.data.data_root import resolve_data_root

logger = logging.getLogger("prosocial_jax.data")
LOCAL_CACHE = os.path.join("~", ".cache", "prosocial_jax", "downloads")
# ParlAI's mirror of most casual corpora (their sha256 are in parlai/tasks/<corpus>/build.py).
PARLAI_DOWNLOADS = "http://parl.ai/downloads"
CHUNK = 1 << 20
USER_AGENT = "prosocial_jax-data-download"


# ---------------------------------------------------------------- what a release is

@dataclasses.dataclass(frozen=True)
class Remote:
  """One file to fetch.

  name: the local file name (default: the URL's last path segment).
  keep: for an archive, a regex on member file names (basenames): the members
    kept, written flat into the corpus folder. None: the file is data itself.
  """
  url: str
  sha256: str | None = None
  name: str | None = None
  keep: str | None = None

  @property
  def filename(self) -> str:
    return self.name or self.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class Release:
  """Where a corpus's official release lives (declared in the corpus's module).

  files: what `download` fetches; variants: other formats of the same release, by
    name (`--variant`); manual: for a corpus that needs a data-use agreement or a
    request to its authors, the instructions printed instead (`{folder}` is the
    corpus folder).
  """
  homepage: str
  license: str
  files: tuple[Remote, ...] = ()
  manual: str | None = None
  variants: dict[str, tuple[Remote, ...]] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------- one file

class DownloadError(RuntimeError):
  """A download failed (HTTP error, too many interruptions, or a checksum mismatch)."""


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    while chunk := f.read(CHUNK):
      digest.update(chunk)
  return digest.hexdigest()


class Progress:
  """`name: 12.3/45.6 MB (27%) 3.4 MB/s ETA 10 s`, redrawn at most twice a second."""

  def __init__(self, name: str, stream: TextIO | None = sys.stderr):
    self.name, self.stream = name, stream
    self.start = self.last = time.monotonic()
    self.done = self.resumed = 0
    self.total: int | None = None

  def update(self, done: int, total: int | None, *, final: bool = False) -> None:
    self.done, self.total = done, total
    now = time.monotonic()
    if self.stream is None or (not final and now - self.last < 0.5):
      return
    self.last = now
    rate = (done - self.resumed) / max(now - self.start, 1e-6)
    line = f"  {self.name}: {done / 1e6:.1f}"
    if total:
      eta = (total - done) / rate if rate > 0 else float("inf")
      line += f"/{total / 1e6:.1f} MB ({100 * done / total:.0f}%) {rate / 1e6:.1f} MB/s ETA {eta:.0f} s"
    else:
      line += f" MB {rate / 1e6:.1f} MB/s"
    self.stream.write("\r" + line + ("\n" if final else ""))
    self.stream.flush()


def _size(path: str) -> int:
  return tf.io.gfile.stat(path).length if tf.io.gfile.exists(path) else 0


def _copy_stream(src: BinaryIO, out: BinaryIO, done: int, total: int | None, progress: Progress) -> int:
  while chunk := src.read(CHUNK):
    out.write(chunk)
    done += len(chunk)
    progress.update(done, total)
  return done


def _http_attempt(url: str, part: str, progress: Progress, timeout: float) -> None:
  offset = _size(part)
  headers = {"User-Agent": USER_AGENT}
  if offset:
    headers["Range"] = f"bytes={offset}-"
  try:
    response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
  except urllib.error.HTTPError as e:
    if e.code == 416 and offset:  # Nothing left to send: the part file is complete.
      return
    raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
  with response:
    length = response.headers.get("Content-Length")
    if offset and response.status == 206:
      mode, total = "ab", (offset + int(length) if length else None)
    else:  # The server ignored the Range header: start again.
      mode, offset, total = "wb", 0, (int(length) if length else None)
    progress.resumed = offset
    with open(part, mode) as out:
      done = _copy_stream(response, out, offset, total, progress)
  if total is not None and done < total:
    raise http.client.IncompleteRead(b"", total - done)


def _copy_attempt(source: str, part: str, progress: Progress) -> None:
  source = source[len("file://"):] if source.startswith("file://") else source
  if not tf.io.gfile.exists(source):
    raise DownloadError(f"{source}: no such file")
  total = _size(source)
  offset = _size(part)
  progress.resumed = offset
  with tf.io.gfile.GFile(source, "rb") as src, open(part, "ab" if offset else "wb") as out:
    src.seek(offset)
    _copy_stream(src, out, offset, total, progress)


def fetch(url: str, dest: str, *, sha256: str | None = None, retries: int = 3,
          timeout: float = 60.0, progress_stream: TextIO | None = sys.stderr,
          part: str | None = None, sleep: Callable[[float], None] = time.sleep) -> str:
  """Downloads `url` to the local path `dest` (resuming `part`, default `<dest>.part`).

  Returns the file's sha256.

  An existing `dest` whose checksum matches `sha256` (or any existing `dest` when
  no checksum is known) is kept as it is.
  """
  if os.path.exists(dest):
    digest = file_sha256(dest)
    if sha256 is None or digest == sha256:
      return digest
    os.remove(dest)  # A stale or damaged copy: fetch it again.
  part = part or dest + ".part"
  for folder in {os.path.dirname(dest), os.path.dirname(part)}:
    os.makedirs(folder or ".", exist_ok=True)
  progress = Progress(os.path.basename(dest), progress_stream)
  is_http = url.startswith(("http://", "https://"))
  for attempt in range(retries + 1):
    try:
      if is_http:
        _http_attempt(url, part, progress, timeout)
      else:
        _copy_attempt(url, part, progress)
      break
    except (http.client.IncompleteRead, ConnectionError, socket.timeout, urllib.error.URLError) as e:
      if attempt == retries:
        raise DownloadError(f"{url}: interrupted ({e!r}); {_size(part)} bytes kept in {part}, "
                            "run the download again to resume") from None
      sleep(min(2 ** attempt, 30))
  progress.update(_size(part), progress.total or _size(part), final=True)
  digest = file_sha256(part)
  if sha256 is not None and digest != sha256:
    os.remove(part)
    raise DownloadError(f"{url}: sha256 {digest}, but the release publishes {sha256}; the "
                        "partial file was removed, run the download again")
  os.replace(part, dest)
  return digest


# ---------------------------------------------------------------- archives

def _archive_members(path: str) -> Iterator[tuple[str, Callable[[], BinaryIO]]]:
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


def extract_archive(path: str, keep: str, out_dir: str) -> list[str]:
  """Writes the members whose file name matches the regex `keep` into `out_dir` (flat).

  Only the base name is used, so no member can write outside `out_dir`. Returns
  the written paths; raises ValueError when nothing matches or two members share
  a name.
  """
  pattern = re.compile(keep)
  written: dict[str, str] = {}
  seen = []
  for name, opener in _archive_members(path):
    base = os.path.basename(name)
    seen.append(name)
    if not pattern.search(base):
      continue
    if base in written:
      raise ValueError(f"{path}: two members named {base} ({written[base]} and {name})")
    target = os.path.join(out_dir, base)
    src: BinaryIO = opener()
    with src, tf.io.gfile.GFile(target + ".tmp", "wb") as out:
      while chunk := src.read(CHUNK):
        out.write(chunk)
    tf.io.gfile.rename(target + ".tmp", target, overwrite=True)
    written[base] = name
  if not written:
    raise ValueError(f"{path}: no member matches {keep!r}; members: {seen[:20]}")
  return [os.path.join(out_dir, base) for base in sorted(written)]


# ---------------------------------------------------------------- into the data root

class ManualDownloadRequired(RuntimeError):
  """The corpus cannot be fetched automatically; the message says how to get it."""


def _releases() -> dict[str, Release]:
  from prosocial_jax.data import CORPORA  # Imported here: the corpus modules import this one.
  return {name: corpus.release for name, corpus in CORPORA.items()}


def _staging_dir(folder: str, corpus: str) -> str:
  if "://" in folder:  # Resuming needs a local file to append to.
    return os.path.join(os.path.expanduser(LOCAL_CACHE), corpus)
  return os.path.join(folder, ".download")


def release_files(corpus: str, release: Release, variant: str | None) -> tuple[Remote, ...]:
  if variant is None:
    return release.files
  if variant not in release.variants:
    raise ValueError(f"{corpus} has no variant {variant!r}; "
                     f"variants: {sorted(release.variants) or 'none'}")
  return release.variants[variant]


def download(corpus: str, data_root: str | None = None, *, variant: str | None = None,
             releases: dict[str, Release] | None = None, retries: int = 3,
             progress_stream: TextIO | None = sys.stderr) -> list[str]:
  """Fetches `corpus` into the data root; returns the data files written (or already there).

  `releases` ({corpus: Release}) replaces the corpora's own (tests point it at local files).
  """
  releases = _releases() if releases is None else releases
  if corpus not in releases:
    raise ValueError(f"Unknown corpus {corpus!r}; expected one of {sorted(releases)} or 'all'.")
  release = releases[corpus]
  folder = os.path.join(resolve_data_root(data_root), corpus)
  if release.manual:
    raise ManualDownloadRequired(release.manual.format(folder=folder))
  tf.io.gfile.makedirs(folder)
  staging = _staging_dir(folder, corpus)
  written = []
  for remote in release_files(corpus, release, variant):
    target = os.path.join(folder, remote.filename)
    if remote.keep is None and "://" not in folder:
      # A plain data file goes straight into the corpus folder (its .part stays hidden).
      local, part = target, os.path.join(staging, remote.filename + ".part")
    else:
      local, part = os.path.join(staging, remote.filename), None
    digest = fetch(remote.url, local, sha256=remote.sha256, retries=retries,
                   progress_stream=progress_stream, part=part)
    if remote.sha256 is None:
      logger.info("%s: sha256 %s (no checksum is published; pin this one)", remote.filename, digest)
    if remote.keep is not None:
      written.extend(extract_archive(local, remote.keep, folder))
      continue
    if local != target:
      tf.io.gfile.copy(local, target, overwrite=True)
    written.append(target)
  return written


def download_all(data_root: str | None = None, *, stream: TextIO = sys.stderr,
                 releases: dict[str, Release] | None = None, **kwargs) -> dict[str, str]:
  """Downloads every corpus that can be; returns {corpus: "ok" | "manual" | error message}."""
  releases = _releases() if releases is None else releases
  status = {}
  for corpus in releases:
    try:
      files = download(corpus, data_root, releases=releases, progress_stream=stream, **kwargs)
      status[corpus] = "ok"
      stream.write(f"{corpus}: {len(files)} file(s) ready\n")
    except ManualDownloadRequired as e:
      status[corpus] = "manual"
      stream.write(f"{corpus}: manual download — {e}\n")
    except (DownloadError, ValueError, OSError) as e:
      status[corpus] = f"failed: {e}"
      stream.write(f"{corpus}: FAILED — {e}\n")
  return status
