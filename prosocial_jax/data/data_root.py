"""Where raw corpora live, what a corpus is, and which of its files hold a split.

The data root is, in order of precedence:

1. the explicit `data_root` argument (callers pass the gin macro `DATA_ROOT`);
2. the environment variable `PROSOCIAL_JAX_DATA`;
3. `~/prosocial_jax_data`.

Each corpus has its own folder under the root (`prosocial_dialog/`,
`daily_dialog/`, ...) holding the release's own files; a split is found from
the file name (train / valid|validation|dev / test). Paths go through
`tf.io.gfile`, so a `gs://` root works.

A `Corpus` is one such folder's declaration: which files its reader takes, how
they become records, where the release comes from and what the synthetic fixture
writes. Each corpus module (`daily_dialog.py`, ...) declares one; the package's
`CORPORA` lists them all.

`sample_data_root()` is the small hand-written sample shipped with the package;
it is gin-configurable, so a gin file can say `DATA_ROOT = @sample_data_root()`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import TYPE_CHECKING, Callable, Sequence

import gin
import tensorflow as tf

from prosocial_jax.data.errors import AmbiguousSplitError, MissingDataError
from prosocial_jax.data.reading import ReadResult

if TYPE_CHECKING:  # Only for annotations: download.py and synthetic.py read the corpora.
  from prosocial_jax.data.download import Release
  from prosocial_jax.data.synthetic import Fixture

ENV_VAR = "PROSOCIAL_JAX_DATA"
DEFAULT_DATA_ROOT = "~/prosocial_jax_data"

# The split names, once: each canonical split -> the words that mark it in a file name
# (the first is the one releases usually use, e.g. valid.json).
SPLIT_WORDS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "validation": ("valid", "validation", "dev"),
    "test": ("test",),
}
SPLITS: tuple[str, ...] = tuple(SPLIT_WORDS)
# How the paper uses a corpus (Corpus.role).
ROLES = ("prosocial", "casual", "social_norms", "evaluation")
# Files in a corpus folder that are never data.
_IGNORED_SUFFIXES = (".md",)


def _expand(path: str | os.PathLike) -> str:
  path = os.fspath(path)
  return path if "://" in path else os.path.expanduser(path)


def _resolve(data_root: str | os.PathLike | None) -> tuple[str, str]:
  """Returns (data root, where it came from)."""
  if data_root:
    return _expand(data_root), "given explicitly (--data_root, or the gin macro DATA_ROOT)"
  env = os.environ.get(ENV_VAR)
  if env:
    return _expand(env), f"from ${ENV_VAR}"
  return _expand(DEFAULT_DATA_ROOT), f"the default; set DATA_ROOT or ${ENV_VAR} to change it"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> str:
  """The data root: `data_root` if given, else $PROSOCIAL_JAX_DATA, else ~/prosocial_jax_data."""
  return _resolve(data_root)[0]


def corpus_dir(corpus: str, data_root: str | os.PathLike | None = None) -> str:
  """The folder of `corpus` under the data root; raises MissingDataError if it is absent."""
  root, origin = _resolve(data_root)
  path = os.path.join(root, corpus)
  if not tf.io.gfile.isdir(path):
    raise MissingDataError(
        f"Corpus {corpus!r} not found: expected the folder {path} "
        f"(data root {root}, {origin}). Download it with "
        f"`python -m prosocial_jax.data download {corpus}`, or put the release's "
        f"own files in that folder.")
  return path


def canonical_split(split: str) -> str:
  """Maps train / valid / validation / dev / test to train / validation / test."""
  for name, words in SPLIT_WORDS.items():
    if split.lower() in words:
      return name
  raise ValueError(f"Unknown split {split!r}: expected one of "
                   f"{sorted(w for words in SPLIT_WORDS.values() for w in words)}.")


def split_file_word(split: str) -> str:
  """The word releases usually name `split`'s file with: train, valid or test."""
  return SPLIT_WORDS[canonical_split(split)][0]


def _data_files(corpus_path: str) -> list[str]:
  """File names in the folder that may hold data: no hidden files, folders or `*.md`."""
  if not tf.io.gfile.isdir(corpus_path):
    raise MissingDataError(f"No folder {corpus_path} to look for data files in.")
  names = []
  for entry in sorted(tf.io.gfile.listdir(corpus_path)):
    entry = entry.rstrip("/")
    if entry.startswith(".") or entry.lower().endswith(_IGNORED_SUFFIXES):
      continue
    if tf.io.gfile.isdir(os.path.join(corpus_path, entry)):
      continue
    names.append(entry)
  return names


def marks_split(name: str, split: str) -> bool:
  """Whether one of the file name's words (split at non-alphanumerics) names `split`."""
  words = SPLIT_WORDS[canonical_split(split)]
  return any(w in words for w in re.split(r"[^a-z0-9]+", name.lower()))


def find_split_files(corpus_path: str | os.PathLike, split: str, *,
                     accept: Callable[[str], bool] | None = None,
                     multiple: bool = False, expected: str | None = None) -> list[str]:
  """The files in `corpus_path` whose names mark `split`.

  A name marks a split when one of its words (split at any non-alphanumeric
  character, e.g. `prosocial_dialog_v1_valid.json`) is a split word. Hidden
  files, folders and `*.md` files are skipped, and so are names `accept` rejects
  (a reader uses it to pass over a release's other files, e.g. DailyDialog's
  `dialogues_act_train.txt`; `expected`, the names it takes, goes into the error when it
  rejects the split's only files). With `multiple`, every match is returned (sorted):
  Topical-Chat's `valid_freq.json` and `valid_rare.json` are one split.

  Raises:
    MissingDataError: no file (or no folder) for the split.
    AmbiguousSplitError: several files match and `multiple` is False.
  """
  corpus_path = _expand(corpus_path)
  name = canonical_split(split)
  words = SPLIT_WORDS[name]
  files = _data_files(corpus_path)
  candidates = [e for e in files if accept is None or accept(e)]
  matches = [e for e in candidates if marks_split(e, name)]
  if not matches:
    refused = [e for e in files if e not in candidates and marks_split(e, name)]
    if refused:  # the split is there, in another release's format
      raise MissingDataError(
          f"No {name!r} split file in {corpus_path} in the release format its reader takes"
          + (f" (file names matching {expected!r})" if expected else "")
          + f": found {refused}, which it does not read (the corpus's SOURCE.md and "
          "docs/data.md name the release).")
    raise MissingDataError(
        f"No {name!r} split file in {corpus_path}: expected a file whose name contains "
        f"one of the words {list(words)} (e.g. {words[0]}.json); found "
        f"{candidates or 'no data files'}.")
  if len(matches) > 1 and not multiple:
    raise AmbiguousSplitError(
        f"Several {name!r} split files in {corpus_path}: {matches}. Keep one, or move the "
        f"others out of the folder.")
  return [os.path.join(corpus_path, m) for m in matches]


def find_data_file(corpus_path: str | os.PathLike, accept: Callable[[str], bool],
                   expected: str) -> str:
  """The one data file `accept` takes, for releases that hold every split in one file
  (e.g. Social Chemistry 101's TSV with a `split` column); `expected` names it in errors."""
  corpus_path = _expand(corpus_path)
  names = _data_files(corpus_path)
  matches = [n for n in names if accept(n)]
  if not matches:
    raise MissingDataError(f"No data file in {corpus_path}: expected {expected}; "
                           f"found {names or 'no data files'}.")
  if len(matches) > 1:
    raise AmbiguousSplitError(f"Several data files in {corpus_path}: {matches}; expected one "
                              f"({expected}). Keep one, or move the others out of the folder.")
  return os.path.join(corpus_path, matches[0])


@dataclasses.dataclass(frozen=True)
class Corpus:
  """One corpus, declared once in its own module; everything else reads this.

  name: its folder under the data root, and its name in commands and task names.
  role: how the paper uses it (ROLES) — "prosocial" (ProsocialDialog), "casual" (the
    casual corpora of the mixtures), "social_norms" (Canary's stage 1) or "evaluation".
  files: a regular expression the lower-cased name of every file the reader takes
    must match in full; the split is then found from the name (or, with
    `one_file`, from a column).
  read_files: `(paths, *, skip_bad_records=False) -> ReadResult`, the paths of one
    split in order (reading.reader builds it from a file format and a record parser).
  release: where `python -m prosocial_jax.data download` fetches it from.
  write_synthetic: `(fixture, splits, n)` writes `n` random records per split in the
    release's format (synthetic.py).
  one_file: the release keeps every split in this one file (its name, for messages),
    and each record carries its `split`.
  several_files_per_split: the files marking one split are read together
    (e.g. Topical-Chat's valid_freq.json and valid_rare.json).
  """
  name: str
  role: str
  files: str
  read_files: Callable[..., ReadResult]
  release: Release
  write_synthetic: Callable[[Fixture, Sequence[str], int], None]
  one_file: str | None = None
  several_files_per_split: bool = False

  def __post_init__(self):
    if self.role not in ROLES:
      raise ValueError(f"Corpus {self.name!r}: unknown role {self.role!r}; expected one of {ROLES}.")

  def accepts(self, file_name: str) -> bool:
    """Whether the reader takes a file of this name (the corpus's other files are passed over)."""
    return re.fullmatch(self.files, file_name.lower()) is not None

  def read_file(self, path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult:
    return self.read_files([path], skip_bad_records=skip_bad_records)

  def split_files(self, split: str, data_root: str | os.PathLike | None = None) -> list[str]:
    """The file(s) holding `split` in the corpus's folder under the data root."""
    folder = corpus_dir(self.name, data_root)
    if self.one_file:
      return [find_data_file(folder, self.accepts, self.one_file)]
    return find_split_files(folder, split, accept=self.accepts,
                            multiple=self.several_files_per_split, expected=self.files)

  def load_split(self, split: str, data_root: str | os.PathLike | None = None, *,
                 skip_bad_records: bool = False) -> ReadResult:
    """Reads `split` (train / validation / test, or an alias) from the data root."""
    paths = self.split_files(split, data_root)
    if not self.one_file:
      return self.read_files(paths, skip_bad_records=skip_bad_records)
    split = canonical_split(split)
    result = self.read_files(paths, skip_bad_records=skip_bad_records)
    records = [r for r in result if r.split == split]
    if not records and len(result):
      raise MissingDataError(
          f"No {split!r} records in {', '.join(paths)}: its {len(result)} records "
          f"belong to {sorted({r.split for r in result})}.")
    return ReadResult(records, result.skipped, result.paths, result.left_out)


@gin.configurable
def sample_data_root() -> str:
  """The data root of the small sample shipped with the package (for tests and quick runs)."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample")
