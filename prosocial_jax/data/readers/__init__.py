"""One reader per corpus, each for the corpus's original release format(s).

Every reader module has `CORPUS` (its folder under the data root), `read_file(path,
*, skip_bad_records=False)` / `read_files(paths, ...)`, and `load_split(split,
data_root=None, *, skip_bad_records=False)`, all returning a `ReadResult`.
`READERS` maps each corpus folder name to its module.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Corpus folder name -> reader module (imported on first use: readers are independent).
_MODULES = {
    "prosocial_dialog": "prosocial_dialog",
    "daily_dialog": "daily_dialog",
    "empathetic_dialogues": "empathetic_dialogues",
    "blended_skill_talk": "blended_skill_talk",
    "topical_chat": "topical_chat",
    "persona_chat": "persona_chat",
    "wizard_of_wikipedia": "wizard_of_wikipedia",
    "social_chem_101": "social_chem",
    "moral_integrity_corpus": "moral_integrity",
    "commonsense_norm_bank": "norm_bank",
    "toxichat": "toxichat",
}
CORPORA: tuple[str, ...] = tuple(_MODULES)


def reader(corpus: str) -> ModuleType:
  """The reader module of `corpus` (a folder name, e.g. 'daily_dialog')."""
  if corpus not in _MODULES:
    raise ValueError(f"Unknown corpus {corpus!r}; expected one of {list(_MODULES)}.")
  return importlib.import_module(f"prosocial_jax.data.readers.{_MODULES[corpus]}")
