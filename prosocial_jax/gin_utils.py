"""T5X-style command lines: --gin_file=F (repeatable), --gin.NAME=VALUE, --gin_search_paths.

`--gin.MODEL_DIR="'runs/x'"` becomes the gin binding `MODEL_DIR='runs/x'`, exactly as
in T5X, so users can paste their habits. Relative gin files and `include`s are
looked up in the current directory, then the project root. Includes are written
from the project root (`include 'gin/runs/train.gin'`): gin 0.5 treats the first
folder of an include as a Python package when the file is not found, and crashes
on a namespace package (a plain `runs/` folder in the working directory), whereas
`gin` always names the installed gin-config package.
"""

from __future__ import annotations

import argparse
import os
import pathlib
from typing import Sequence

import gin

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent

USAGE = """python -m prosocial_jax.{entry} --gin_file=FILE [--gin_file=FILE ...]
       [--gin.NAME=VALUE ...] [--gin_search_paths=DIR[,DIR...]]

  --gin_file          gin config to load (repeatable); e.g. gin/quickstart.gin
  --gin.NAME=VALUE    one gin binding; strings need inner quotes: --gin.MODEL_DIR="'runs/x'"
  --gin_bindings=B    a raw gin binding line (repeatable), as in T5X
  --gin_search_paths  extra folders for gin files and includes (comma-separated)
"""


def parse_args(argv: Sequence[str], entry: str) -> tuple[list[str], list[str], list[str]]:
  """Splits argv into (gin files, gin bindings, search paths)."""
  parser = argparse.ArgumentParser(prog=f"python -m prosocial_jax.{entry}",
                                   usage=USAGE.format(entry=entry), add_help=True)
  parser.add_argument("--gin_file", action="append", default=[])
  parser.add_argument("--gin_bindings", action="append", default=[])
  parser.add_argument("--gin_search_paths", default="")
  known, rest = parser.parse_known_args(list(argv))
  bindings = list(known.gin_bindings)
  for arg in rest:
    if not arg.startswith("--gin.") or "=" not in arg:
      parser.error(f"unrecognised argument {arg!r}; expected --gin.NAME=VALUE")
    name, value = arg[len("--gin."):].split("=", 1)
    bindings.append(f"{name} = {value}")
  if not known.gin_file:
    parser.error("at least one --gin_file is required")
  search = [p for p in known.gin_search_paths.split(",") if p]
  return known.gin_file, bindings, search


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str],
              search_paths: Sequence[str] = ()) -> None:
  """Parses gin files and bindings with the project's search paths registered."""
  folders = [*search_paths, os.getcwd(), str(PROJECT_ROOT)]
  for path in folders:
    gin.add_config_file_search_path(path)
  resolved, missing = [], []
  for name in gin_files:
    found = next((os.path.join(d, name) for d in ["", *folders]
                  if os.path.exists(os.path.join(d, name))), None)
    (resolved if found else missing).append(os.path.abspath(found) if found else name)
  if missing:
    raise FileNotFoundError(
        f"gin file(s) not found: {missing}; looked in the current directory, "
        f"{list(search_paths)} and {PROJECT_ROOT}.")
  gin.parse_config_files_and_bindings(resolved, list(bindings))
