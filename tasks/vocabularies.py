"""The tasks' vocabulary.

`DEFAULT_VOCAB_PATH` is the SentencePiece model shipped in `tasks/vocab/`
(BPE with byte fallback, 1024 pieces, trained on the shipped sample by
`python -m prosocial_jax.data.train_vocab`; the five safety labels are one piece
each; pad 0, eos 1, unk 2). Point the environment variable `PROSOCIAL_JAX_VOCAB`
at another `.model` (e.g. one trained on the full train split, or a pretrained
checkpoint's vocabulary) to use it instead; the tasks read it when `tasks` is
imported. No sentinel ids are added (`extra_ids=0`): the Canary and Prost tasks
do not use span corruption.
"""

from __future__ import annotations

import functools
import os

import seqio

VOCAB_ENV_VAR = "PROSOCIAL_JAX_VOCAB"
DEFAULT_VOCAB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab",
                                  "prosocial_sample.model")


def vocab_path() -> str:
  """$PROSOCIAL_JAX_VOCAB if set, else DEFAULT_VOCAB_PATH."""
  return os.environ.get(VOCAB_ENV_VAR) or DEFAULT_VOCAB_PATH


@functools.lru_cache(maxsize=None)
def _vocabulary(path: str) -> seqio.SentencePieceVocabulary:
  return seqio.SentencePieceVocabulary(path, extra_ids=0)


def get_default_vocabulary() -> seqio.SentencePieceVocabulary:
  """The SentencePiece vocabulary at vocab_path() (one shared object per path)."""
  return _vocabulary(vocab_path())
