"""Transparent huge pages for the host's malloc: on by default for the commands
that run models on the CPU (train, eval, infer, the benchmarks).

XLA:CPU takes its large buffers from glibc malloc, which serves anything over
32 MiB with a fresh mmap and gives it back with munmap: every step faults every
page of those buffers in again, 4 KiB at a time (a [32128, 512] float32 gradient
is 66 MB). `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` makes malloc ask for
transparent huge pages on those mappings (2 MiB pages: 512x fewer faults).
Measured on the T5 v1.1-small train step (batch 8, inputs 128 / targets 64,
Adafactor) on a 2-core AMD EPYC Zen 5: float32 1.26 -> 1.09 s/step, bfloat16
with bf16_fast 0.77 -> 0.63 s/step. The peer's bf16 step gains as much
(0.90 -> 0.77), so `bench/run.py` gives both sides the same setting.

glibc reads its tunables once, when the process starts, so an entry point calls
`reexec_with_hugepages()` before it imports JAX: the process re-executes itself
(same PID, same command line) with the tunable added. Nothing happens when the
host is not Linux with glibc >= 2.35, the kernel's THP mode is not `madvise`
(`always` gives huge pages anyway, `never` none), GLIBC_TUNABLES already sets
glibc.malloc.hugetlb, or PROSOCIAL_JAX_HUGEPAGES=0. PROSOCIAL_JAX_HUGEPAGES=1
sets the tunable whatever the THP mode.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Mapping, Optional

TUNABLE = "glibc.malloc.hugetlb=1"
SWITCH = "PROSOCIAL_JAX_HUGEPAGES"
_THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def thp_mode(path: str = _THP_ENABLED) -> Optional[str]:
  """The kernel's transparent-huge-page mode ('always', 'madvise', 'never'), or None."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return None
  start, end = text.find("["), text.find("]")
  return text[start + 1:end] if 0 <= start < end else None


def glibc_version() -> Optional[tuple[int, int]]:
  name, version = platform.libc_ver()
  if name != "glibc" or not version:
    return None
  major, minor = version.split(".")[:2]
  return int(major), int(minor)


def hugepages_wanted(environ: Mapping[str, str], glibc: Optional[tuple[int, int]],
                     thp: Optional[str]) -> bool:
  """Whether to re-execute with the tunable (the module doc's rules)."""
  switch = environ.get(SWITCH, "")
  if switch not in ("", "0", "1"):
    raise ValueError(f"{SWITCH} must be 0, 1 or unset, got {switch!r}")
  if switch == "0" or glibc is None or glibc < (2, 35):
    return False
  if "glibc.malloc.hugetlb" in environ.get("GLIBC_TUNABLES", ""):
    return False
  return switch == "1" or thp == "madvise"


def with_tunable(environ: Mapping[str, str]) -> dict[str, str]:
  """A copy of `environ` with the tunable appended to GLIBC_TUNABLES."""
  env = dict(environ)
  env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), TUNABLE]))
  return env


def environment() -> dict[str, str]:
  """This process's environment, with the tunable added where it is wanted (for the
  processes a benchmark starts, ours and the peer's alike)."""
  if hugepages_wanted(os.environ, glibc_version(), thp_mode()):
    return with_tunable(os.environ)
  return dict(os.environ)


def reexec_with_hugepages() -> None:
  """Re-executes this process with the tunable where it is wanted; else returns.

  Call it first thing in a command's `__main__` block, never from a library
  function: it replaces the running process.
  """
  env = environment()
  if env.get("GLIBC_TUNABLES") == os.environ.get("GLIBC_TUNABLES"):
    return  # nothing to add
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, env)


def describe() -> str:
  """One line for the log: whether this process runs with the tunable."""
  if TUNABLE in os.environ.get("GLIBC_TUNABLES", ""):
    return (f"host malloc: transparent huge pages (GLIBC_TUNABLES={TUNABLE}; "
            f"{SWITCH}=0 turns this off)")
  return "host malloc: glibc defaults"
