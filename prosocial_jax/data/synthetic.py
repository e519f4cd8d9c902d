"""A synthetic data root in every corpus's original release format.

For tests that need all corpora at once (mixtures, determinism, packing) and for
the input-pipeline benchmark, where the real releases may not be on disk. The
text is random English-like words — no real data — drawn with a fixed seed per
(corpus, split), so the same call writes the same bytes. Reader tests use small
hand-written files instead, whose expected examples are worked out by hand.

Each corpus module says what its fixture holds (`Corpus.write_synthetic`, given a
`Fixture`); this module supplies the random text and writes the files.

    python -m prosocial_jax.data synthetic DIR --dialogues 200
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from typing import Any, Sequence

import tensorflow as tf

from prosocial_jax.data import CORPORA
from prosocial_jax.data.data_root import SPLITS

_WORDS = (
    "i you he she we they it this that my your friend family mother father brother sister "
    "work school home party money car dog cat phone game movie book food dinner lunch "
    "today yesterday tomorrow always never really very just still maybe because but and or "
    "if when so then want need think feel know like love hate help tell ask give take make "
    "go come see look find keep leave let call try play read watch eat drink buy pay sell "
    "good bad right wrong nice kind rude fair unfair honest happy sad angry sorry okay fine "
    "should could would will can might must have has had is are was were be been do does did "
    "people someone everyone nobody neighbor boss teacher kid kids wife husband partner "
    "promise secret lie truth joke gift time week year night morning weekend job office "
    "house room street store city trip vacation weather music song team class test plan"
).split()


class Text(random.Random):
  """Seeded random English-like text: words, sentences, rules-of-thumb, dialogues."""

  def word(self) -> str:
    return self.choice(_WORDS)

  def sentence(self, low: int, high: int) -> str:
    words = [self.choice(_WORDS) for _ in range(self.randint(low, high))]
    return " ".join(words).capitalize() + self.choice(".?!")

  def rot(self) -> str:
    return self.choice(("It's wrong to ", "You should ", "It's kind to ", "You shouldn't ")) + \
        " ".join(self.choice(_WORDS) for _ in range(self.randint(3, 8))) + "."

  def dialogues(self, n: int, low: int, high: int, words=(8, 24)) -> list[list[str]]:
    """`n` dialogues of `low`..`high` sentences of `words[0]`..`words[1]` words."""
    return [[self.sentence(*words) for _ in range(self.randint(low, high))] for _ in range(n)]


class Fixture:
  """One corpus's folder in a synthetic data root: seeded text, and file writers."""

  def __init__(self, folder: str, corpus: str, prosocial_format: str):
    self.folder = folder
    self.corpus = corpus
    self.prosocial_format = prosocial_format  # ProsocialDialog: "hf" or "direct"

  def text(self, split: str | None = None) -> Text:
    """Random text seeded by the corpus and split (a one-file release: the corpus alone)."""
    return Text(f"{self.corpus}/{split}" if split else self.corpus)

  def write(self, name: str, text: str) -> None:
    with tf.io.gfile.GFile(os.path.join(self.folder, name), "w") as f:
      f.write(text)

  def write_json(self, name: str, value: Any) -> None:
    self.write(name, json.dumps(value))

  def write_lines(self, name: str, lines: Sequence[str]) -> None:
    self.write(name, "\n".join(lines) + "\n")

  def write_table(self, name: str, rows: Sequence[Sequence[str]], delimiter: str) -> None:
    """CSV/TSV, quoted as pandas writes it."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    self.write(name, out.getvalue())


def write_data_root(root: str, *, dialogues: int = 20, corpora: Sequence[str] | None = None,
                    splits: Sequence[str] = SPLITS, prosocial_format: str = "hf") -> str:
  """Writes `dialogues` dialogues (rows, threads) per split of each corpus under `root`.

  `corpora`: names (default: every corpus). A release that keeps every split in one
  file is written whole whatever `splits` says. `prosocial_format` is "hf" (Hugging
  Face JSON lines) or "direct" (direct download). Returns `root`.
  """
  for name in CORPORA if corpora is None else corpora:
    folder = os.path.join(root, name)
    tf.io.gfile.makedirs(folder)
    CORPORA[name].write_synthetic(Fixture(folder, name, prosocial_format), splits, dialogues)
  return root
