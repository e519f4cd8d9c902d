"""Which code this is: the package version and, in a git clone, the commit.

Every run logs it and every checkpoint records it (`meta["code"]`), so a
checkpoint says which code wrote it. `python -m prosocial_jax --version` prints it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import pathlib
import subprocess

_CLONE_ROOT = pathlib.Path(__file__).resolve().parent.parent


def package_version() -> str:
  try:
    return importlib.metadata.version("prosocial_jax")
  except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
    return "unknown"


def _git(*args: str) -> str | None:
  try:
    result = subprocess.run(["git", "-C", str(_CLONE_ROOT), *args], capture_output=True,
                            text=True, timeout=10)
  except (OSError, subprocess.SubprocessError):
    return None
  return result.stdout.strip() if result.returncode == 0 else None


@functools.cache
def code_record() -> dict[str, object]:
  """{"version": ..., "git_commit": ... or None, "git_dirty": ... or None}."""
  record: dict[str, object] = {"version": package_version(), "git_commit": None,
                               "git_dirty": None}
  if (_CLONE_ROOT / ".git").exists() and (_CLONE_ROOT / "pyproject.toml").exists():
    commit = _git("rev-parse", "HEAD")
    if commit:
      record["git_commit"] = commit
      record["git_dirty"] = bool(_git("status", "--porcelain", "--untracked-files=no"))
  return record


def describe() -> str:
  """'prosocial_jax 0.1.0 (git 1a2b3c4d5e6f, uncommitted changes)' or without the git part."""
  record = code_record()
  text = f"prosocial_jax {record['version']}"
  if record["git_commit"]:
    text += f" (git {str(record['git_commit'])[:12]}"
    text += ", uncommitted changes)" if record["git_dirty"] else ")"
  return text
