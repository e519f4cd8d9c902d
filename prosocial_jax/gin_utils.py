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

A typo is caught when the config is parsed, before any JAX or TF work, as a
`GinConfigError` (a `user_errors.UserError`: one line of message, exit status 2)
that keeps gin's file and line and adds the nearest known names: an unknown
configurable or parameter, a macro used but never set (`%TRAIN_STEPZ`), a
`--gin.NAME=...` macro that nothing uses while a used one is spelled nearly alike
(`--gin.TRAIN_STEPZ=10`), a value gin cannot parse (an unquoted string), a
`gin.REQUIRED` macro left unset.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import os
import pathlib
import re
from typing import Any, Iterator, Sequence

import gin
from gin import config_parser

from prosocial_jax.user_errors import UserError

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent


class GinConfigError(UserError, ValueError):
  """A gin file or binding that cannot configure this run (a typo, a syntax error, an
  unset required macro); the message keeps gin's file and line and names the nearest
  known names."""


class GinFileNotFoundError(UserError, FileNotFoundError):
  """A --gin_file that is in none of the places looked at (they are listed)."""


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
    problem = _unparsable_value(name, value)
    if problem:
      parser.error(problem)
    bindings.append(f"{name} = {value}")
  return bindings


def _unparsable_value(name: str, value: str) -> str | None:
  """What is wrong with a `--gin.NAME=VALUE` whose value gin cannot parse, naming the flag:
  almost always a string without its inner quotes (the shell ate the only ones)."""
  try:
    list(config_parser.ConfigParser(f"{name} = {value}",
                                    gin.config.ParserDelegate(skip_unknown=True)))
  except (SyntaxError, ValueError):
    return (f"--gin.{name}={value}: gin cannot parse the value {value!r}. A string needs "
            f"quotes inside the flag: --gin.{name}=\"'{value}'\"")
  return None


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
  raise GinFileNotFoundError(f"gin file {name!r} not found; looked at:\n{looked}\n{hint}")


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str],
              search_paths: Sequence[str] = ()) -> None:
  """Parses gin files and bindings; includes resolve like `--gin_file`s.

  Raises GinFileNotFoundError (a missing --gin_file) or GinConfigError (see the module
  docstring)."""
  for path in [*search_paths, os.getcwd(), str(shipped_config_dir().parent)]:
    gin.add_config_file_search_path(path)
  resolved = [resolve_gin_file(name, search_paths) for name in gin_files]
  try:
    gin.parse_config_files_and_bindings(resolved, list(bindings))
  except (ValueError, SyntaxError, ImportError, OSError) as error:
    raise GinConfigError(_explained(error)) from None
  check_macros(bindings)


# ---------------------------------------------------------------- what a typo meant
# gin 0.5 keeps its registry and bindings in private module attributes; every use is
# guarded, so a gin without them only loses the hints.

def _nearest(name: str, known: Sequence[str], cutoff: float = 0.6) -> list[str]:
  return difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=cutoff)


def _configurable_names() -> list[str]:
  try:
    return [configurable.name for _, configurable in gin.config._REGISTRY.items()]  # pylint: disable=protected-access
  except AttributeError:
    return []


def _parameter_names(configurable: str) -> list[str]:
  try:
    wrapped = gin.config._REGISTRY.get_match(configurable).wrapped  # pylint: disable=protected-access
    return list(inspect.signature(wrapped).parameters)
  except (AttributeError, TypeError, ValueError):
    return []


def _did_you_mean(names: list[str]) -> str:
  return f"\nDid you mean: {', '.join(names)}?" if names else ""


def _explained(error: BaseException) -> str:
  """gin's message (which names the file and line), with the nearest names of a typo."""
  message = f"gin config: {error}"
  if (m := re.search(r"No configurable matching (?:reference )?'@?([\w.]+)", str(error))):
    name = m.group(1).split(".")[-1]
    return message + _did_you_mean(_nearest(name, _configurable_names()))
  if (m := re.search(r"Configurable '([\w.]+)' doesn't have a parameter named '(\w+)'",
                     str(error))):
    return message + _did_you_mean(_nearest(m.group(2), _parameter_names(m.group(1))))
  if (m := re.search(r"No bindings specified for '(\w+)/gin\.macro'", str(error))):
    # gin's own message here quotes the whole config: name the macro instead.
    defined, used = _macros()
    return _unset_macro(m.group(1), used.get(m.group(1)), defined)
  if (m := re.search(r"^(\w+)/macro\.value set to `%gin\.REQUIRED`", str(error))):
    return message + (f"\nSet it with --gin.{m.group(1)}=VALUE (a string in inner quotes: "
                      f"--gin.{m.group(1)}=\"'...'\").")
  if isinstance(error, SyntaxError) and ("Failed to parse token" in str(error)
                                         or "Unable to parse value" in str(error)):
    return message + ("\nA string value needs quotes inside the flag: "
                      "--gin.MODEL_DIR=\"'runs/x'\".")
  return message


def missing_bindings(error: BaseException) -> GinConfigError | None:
  """gin's error for a configurable called without a required parameter (raised when it
  is called, a RuntimeError), as a message naming the flag that sets it; else None."""
  m = re.match(r"Required bindings for `([\w.]+)` not provided in config: \[(.*)\]",
               str(error))
  if not isinstance(error, RuntimeError) or not m:
    return None
  name, params = m.group(1), re.findall(r"'(\w+)'", m.group(2))
  flags = ", ".join(f"--gin.{name}.{p}=VALUE" for p in params)
  return GinConfigError(f"gin config: {name} needs {', '.join(params)}, which no binding "
                        f"sets: {flags}")


def _unset_macro(macro: str, used_by: str | None, defined) -> str:
  # gin's own phrase is kept, for tools that read it (tests/test_gin_configs.py does).
  by = f" (by {used_by})" if used_by else ""
  return (f"gin config: macro %{macro} is used{by} but never set (No bindings specified for "
          f"'{macro}/gin.macro')." + _did_you_mean(_nearest(macro, defined)))


def _references(value: Any) -> Iterator[Any]:
  """The gin references (`@name()`, `%MACRO`) inside a bound value."""
  if isinstance(value, gin.config.ConfigurableReference):
    yield value
  elif isinstance(value, dict):
    for item in value.values():
      yield from _references(item)
  elif isinstance(value, (list, tuple)):
    for item in value:
      yield from _references(item)


def _macros() -> tuple[set[str], dict[str, str]]:
  """(the macros set, {macro used: a binding that uses it}) in the parsed config."""
  try:
    bound = gin.config._CONFIG  # pylint: disable=protected-access
  except AttributeError:
    return set(), {}
  defined = {scope for scope, selector in bound if selector == "gin.macro"}
  used: dict[str, str] = {}
  for (scope, selector), parameters in bound.items():
    for parameter, value in parameters.items():
      for reference in _references(value):
        if reference.configurable.name == "macro":
          macro = reference.scoped_selector.rsplit("/", 1)[0]
          where = scope if selector == "gin.macro" else f"{selector.split('.')[-1]}.{parameter}"
          used.setdefault(macro, where)
  return defined, used


def check_macros(bindings: Sequence[str]) -> None:
  """Raises GinConfigError for a command-line macro that nothing uses while a used macro
  is spelled nearly alike (a typo: the run would silently keep the other's value). gin
  itself refuses a macro that is used but never set."""
  _, used = _macros()
  for binding in bindings:
    m = re.match(r"\s*([A-Za-z_]\w*)\s*=", binding)
    if not m or m.group(1) in used:
      continue
    near = _nearest(m.group(1), list(used), cutoff=0.8)
    if near:
      raise GinConfigError(f"gin config: the binding `{binding.strip()}` sets macro "
                           f"{m.group(1)}, which no configuration uses." + _did_you_mean(near))
