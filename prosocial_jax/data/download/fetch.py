"""Fetching one file: resumable over HTTP(S), with progress and a sha256 check.

The bytes go to `<dest>.part` first; an interrupted download (a dropped
connection, a killed process) continues from there with an HTTP Range request —
within the same call (`retries`) or on the next run. Only a file whose checksum
matches (when one is known) is renamed to `dest`. `file://` URLs, local paths and
`gs://` paths are copied through tf.io.gfile, resuming the same way.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import BinaryIO, Callable, TextIO

import tensorflow as tf

CHUNK = 1 << 20
USER_AGENT = "prosocial_jax-data-download"


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
