"""Texts to token ids as the SeqIO tasks make them — defined once, for the tasks and for
inference (`prosocial_jax.inference.tools`), so a deployed model sees what it trained on.

A vocabulary spec is a SentencePiece `.model` path (local or gs://) or `byte`
(seqio.ByteVocabulary); `extra_ids` sentinels are appended after its pieces.

Every feature ends with EOS. Inputs are cut from the LEFT (the latest turns of a
dialogue matter most), keeping `length - 1` tokens and then EOS; targets are cut
from the right by SeqIO (`append_eos_after_trim`), the safety label first. The
tasks do this with TF ops (tasks/registration.py, `tasks.preprocessors.left_truncate`
using `kept_input_length`); `encode_input` / `encode_target` are the same rules on
Python lists.
"""

from __future__ import annotations

import functools
from typing import Sequence

import seqio

BYTE = "byte"


@functools.lru_cache(maxsize=None)
def make_vocabulary(spec: str, extra_ids: int = 0) -> seqio.Vocabulary:
  """The seqio vocabulary of `spec` (one shared object per choice)."""
  if spec == BYTE:
    return seqio.ByteVocabulary(extra_ids=extra_ids)
  return seqio.SentencePieceVocabulary(spec, extra_ids=extra_ids)


def kept_input_length(length: int, add_eos: bool = True) -> int:
  """How many of an input's last tokens survive a feature length of `length`
  (room is left for EOS when the feature adds one)."""
  return max(length - (1 if add_eos else 0), 0)


def encode_input(vocabulary: seqio.Vocabulary, text: str, length: int) -> list[int]:
  """`text`'s ids as a task's `inputs`: its last `length - 1` tokens, then EOS."""
  ids = list(vocabulary.encode(text))
  keep = kept_input_length(length)
  return ids[max(len(ids) - keep, 0):] + [vocabulary.eos_id]


def encode_target(vocabulary: seqio.Vocabulary, text: str, length: int) -> list[int]:
  """`text`'s ids as a task's `targets`: its first `length - 1` tokens, then EOS."""
  return list(vocabulary.encode(text))[:max(length - 1, 0)] + [vocabulary.eos_id]


def decode(vocabulary: seqio.Vocabulary, ids: Sequence[int]) -> str:
  """Output ids -> the text a task's postprocessor reads: SeqIO's decoding (up to the
  first EOS), stripped, as the postprocessors strip it (SentencePiece may drop or
  add a leading space)."""
  return vocabulary.decode([int(i) for i in ids]).strip()
