"""`python -m prosocial_jax.data download <corpus>|all`: official releases into the data root.

For each corpus, the files of its release (download/releases.py) are fetched
into `<data root>/<corpus>/.download/` (a hidden folder the readers pass over;
for a gs:// data root, a local cache under ~/.cache/prosocial_jax/downloads), with
progress, resuming, and a sha256 check where one is published. Archives are then
unpacked: only the data files the reader needs are written, flat, into
`<data root>/<corpus>/`. Running it again skips what is already there.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

import tensorflow as tf

from prosocial_jax.data.data_root import resolve_data_root
from prosocial_jax.data.download import archives
from prosocial_jax.data.download.fetch import DownloadError, fetch
from prosocial_jax.data.download.releases import RELEASES, Release, Remote

logger = logging.getLogger("prosocial_jax.data")
LOCAL_CACHE = os.path.join("~", ".cache", "prosocial_jax", "downloads")


class ManualDownloadRequired(RuntimeError):
  """The corpus cannot be fetched automatically; the message says how to get it."""


def _staging_dir(folder: str, corpus: str) -> str:
  if "://" in folder:  # Resuming needs a local file to append to.
    return os.path.join(os.path.expanduser(LOCAL_CACHE), corpus)
  return os.path.join(folder, ".download")


def release_files(release: Release, variant: str | None) -> tuple[Remote, ...]:
  if variant is None:
    return release.files
  if variant not in release.variants:
    raise ValueError(f"{release.corpus} has no variant {variant!r}; "
                     f"variants: {sorted(release.variants) or 'none'}")
  return release.variants[variant]


def download(corpus: str, data_root: str | None = None, *, variant: str | None = None,
             releases: dict[str, Release] | None = None, retries: int = 3,
             progress_stream: TextIO | None = sys.stderr) -> list[str]:
  """Fetches `corpus` into the data root; returns the data files written (or already there).

  `releases` replaces the table (tests point it at local files).
  """
  releases = RELEASES if releases is None else releases
  if corpus not in releases:
    raise ValueError(f"Unknown corpus {corpus!r}; expected one of {sorted(releases)} or 'all'.")
  release = releases[corpus]
  folder = os.path.join(resolve_data_root(data_root), corpus)
  if release.manual:
    raise ManualDownloadRequired(release.manual.format(folder=folder))
  tf.io.gfile.makedirs(folder)
  staging = _staging_dir(folder, corpus)
  written = []
  for remote in release_files(release, variant):
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
      written.extend(archives.extract(local, remote.keep, folder))
      continue
    if local != target:
      tf.io.gfile.copy(local, target, overwrite=True)
    written.append(target)
  return written


def download_all(data_root: str | None = None, *, stream: TextIO = sys.stderr,
                 releases: dict[str, Release] | None = None, **kwargs) -> dict[str, str]:
  """Downloads every corpus that can be; returns {corpus: "ok" | "manual" | error message}."""
  releases = RELEASES if releases is None else releases
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
