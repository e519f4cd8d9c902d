"""T5X-style command lines: --gin_file=F (repeatable), --gin.NAME=VALUE, --gin_search_paths.

`--gin.MODEL_DIR="'runs/x'"` becomes the gin binding `MODEL_DIR='runs/x'`, exactly as
in T5X, so users can paste their habits.

The project's gin configs (the repository's top-level `gin/`) ship inside the
package as `prosocial_jax/gin/` (setup.py copies them at build time), so an
installed copy runs every recipe from any directory. A `--gin_file` is looked up
as given (absolute, or relative to the current directory), then in each
`--gin_search_paths` folder, then among the shipped configs — as
`gin/quickstart.gin`, `quickstart.gin` or `models/t5_1_1/large.gin` alike.
Includes are written from the configs' parent (`include 'gin/runs/train.gin'`):
gin 0.5 treats the first folder of an include as a Python package when the file is
not found, and crashes on a namespace package (a plain `runs/` folder in the
working directory), whereas `gin` always names the installed gin-config package.
"""

from __future__ import annotations

import argparse
import difflib
import os
import pathlib
from typing import Sequence

import gin

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent


def shipped_config_dir() -> pathlib.Path:
  """The project's gin configs: inside an installed package, else the clone's `gin/`."""
  installed = _PACKAGE_DIR / "gin"
  if (installed / "quickstart.gin").exists():
    return installed
  # A clone (or an editable install of one): the package sits beside `gin/`. Checked by
  # a file of ours, since site-packages also holds a `gin/` (the gin-config library).
  return _PACKAGE_DIR.parent / "gin"


def shipped_config_names() -> list[str]:
  """Every shipped gin file, relative to the configs folder ('models/t5_1_1/large.gin')."""
  root = shipped_config_dir()
  return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.gin"))

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
  bindings = gin_bindings(parser, known.gin_bindings, rest)
  if not known.gin_file:
    parser.error("at least one --gin_file is required")
  search = [p for p in known.gin_search_paths.split(",") if p]
  return known.gin_file, bindings, search


def gin_bindings(parser: argparse.ArgumentParser, raw: Sequence[str],
                 rest: Sequence[str]) -> list[str]:
  """The `--gin_bindings` lines plus one per `--gin.NAME=VALUE` among the arguments
  argparse did not know (`rest`); anything else there is a usage error."""
  bindings = list(raw)
  for arg in rest:
    if not arg.startswith("--gin.") or "=" not in arg:
      parser.error(f"unrecognised argument {arg!r}; expected --gin.NAME=VALUE")
    name, value = arg[len("--gin."):].split("=", 1)
    bindings.append(f"{name} = {value}")
  return bindings


def resolve_gin_file(name: str, search_paths: Sequence[str] = ()) -> str:
  """The absolute path of `name` (see the module docstring for the order searched)."""
  configs = shipped_config_dir()
  candidates = [pathlib.Path(name), *(pathlib.Path(d) / name for d in search_paths),
                configs / name, configs.parent / name]
  for candidate in candidates:
    if candidate.is_file():
      return str(candidate.resolve())
  shipped = shipped_config_names()
  stripped = name[len("gin/"):] if name.startswith("gin/") else name
  nearest = difflib.get_close_matches(stripped, shipped, n=4, cutoff=0.5)
  looked = "\n".join(f"  {c if c.is_absolute() else os.path.abspath(c)}"
                      for c in dict.fromkeys(candidates))
  hint = (f"Nearest shipped configs: {', '.join(nearest)}." if nearest else
          f"Shipped configs: {', '.join(shipped)}.")
  raise FileNotFoundError(f"gin file {name!r} not found; looked at:\n{looked}\n{hint}")


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str],
              search_paths: Sequence[str] = ()) -> None:
  """Parses gin files and bindings; includes resolve like `--gin_file`s."""
  for path in [*search_paths, os.getcwd(), str(shipped_config_dir().parent)]:
    gin.add_config_file_search_path(path)
  resolved = [resolve_gin_file(name, search_paths) for name in gin_files]
  gin.parse_config_files_and_bindings(resolved, list(bindings))
