"""The tasks' vocabulary, chosen per run without re-registering any task.

Every task's features hold the one `TASK_VOCABULARY` object. It is a stand-in
that resolves the real vocabulary each time it is used, so the choice can be
made after `import tasks` (e.g. once gin has been parsed). The choice, first
match wins:

1. `tasks.set_vocabulary(spec, extra_ids=...)` — for code (a trainer, a test);
2. gin: `tasks.vocabularies.vocabulary_spec.spec = '...'` (and `.extra_ids`), after
   `import tasks.vocabularies` in the gin file;
3. the environment: `PROSOCIAL_JAX_VOCAB` (and `PROSOCIAL_JAX_VOCAB_EXTRA_IDS`);
4. the default, `DEFAULT_VOCAB_PATH`.

A spec is a SentencePiece `.model` path (local or gs://) or `byte`:

* a pretrained model's own vocabulary, required when seeding from its checkpoint —
  e.g. T5's `gs://t5-data/vocabs/cc_all.32000/sentencepiece.model` with
  `extra_ids=100` (T5's 100 sentinels, so ids match the checkpoint's embeddings);
* one trained by the project on a training split (`python -m prosocial_jax.data
  train-vocab`, see prosocial_jax/data/train_vocab.py), as the paper trains its BPE;
  `DEFAULT_VOCAB_PATH` is such a model (1024 pieces, trained on the shipped sample);
* `byte`: seqio's ByteVocabulary (UTF-8 bytes + pad/eos/unk), which needs no file.

For a SentencePiece choice, `TASK_VOCABULARY.sentencepiece_model_file` is the
model's path (the trainer copies that file into MODEL_DIR); the byte vocabulary
has no such attribute.
"""

from __future__ import annotations

import os
from typing import Any

import gin
import seqio

from prosocial_jax.data import encoding

VOCAB_ENV_VAR = "PROSOCIAL_JAX_VOCAB"
EXTRA_IDS_ENV_VAR = "PROSOCIAL_JAX_VOCAB_EXTRA_IDS"
BYTE = encoding.BYTE
DEFAULT_VOCAB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab",
                                  "prosocial_sample.model")

_override: tuple[str, int | None] | None = None


def set_vocabulary(spec: str | os.PathLike | None, extra_ids: int | None = None) -> None:
  """Chooses the vocabulary for every task (None: back to gin / env / default)."""
  global _override
  _override = None if spec is None else (os.fspath(spec), extra_ids)


@gin.configurable
def vocabulary_spec(spec: str | None = None, extra_ids: int | None = None) -> tuple[str | None, int | None]:
  """The gin-bound choice (None when unbound); see the module docstring."""
  return spec, extra_ids


def selected_vocabulary() -> tuple[str, int]:
  """(spec, extra_ids) in effect now: setter, else gin, else env, else the default."""
  spec, extra_ids = _override if _override is not None else vocabulary_spec()
  spec = spec or os.environ.get(VOCAB_ENV_VAR) or DEFAULT_VOCAB_PATH
  if extra_ids is None:
    extra_ids = int(os.environ.get(EXTRA_IDS_ENV_VAR) or 0)
  return spec, extra_ids


def vocab_path() -> str:
  """The chosen spec: a `.model` path, or `byte`."""
  return selected_vocabulary()[0]


def get_default_vocabulary() -> seqio.Vocabulary:
  """The vocabulary chosen now (one shared object per choice)."""
  return encoding.make_vocabulary(*selected_vocabulary())


class TaskVocabulary(seqio.Vocabulary):
  """Resolves to `get_default_vocabulary()` on every use; see the module docstring."""

  def __init__(self):
    super().__init__(extra_ids=0)

  @property
  def resolved(self) -> seqio.Vocabulary:
    return get_default_vocabulary()

  @property
  def sentencepiece_model_file(self) -> str:
    vocab = self.resolved
    if not isinstance(vocab, seqio.SentencePieceVocabulary):
      raise AttributeError(f"{vocab} has no SentencePiece model file")
    return vocab.sentencepiece_model_file

  # Ids and sizes.
  bos_id = property(lambda self: self.resolved.bos_id)
  eos_id = property(lambda self: self.resolved.eos_id)
  pad_id = property(lambda self: self.resolved.pad_id)
  unk_id = property(lambda self: self.resolved.unk_id)
  extra_ids = property(lambda self: self.resolved.extra_ids)
  vocab_size = property(lambda self: self.resolved.vocab_size)
  _base_vocab_size = property(lambda self: self.resolved._base_vocab_size)  # pylint: disable=protected-access

  # Encoding and decoding go to the public methods, so extra ids are handled there.
  def encode(self, s):
    return self.resolved.encode(s)

  def decode(self, ids):
    return self.resolved.decode(ids)

  def encode_tf(self, s):
    return self.resolved.encode_tf(s)

  def decode_tf(self, ids):
    return self.resolved.decode_tf(ids)

  def _encode(self, s):
    return self.resolved.encode(s)

  def _decode(self, ids):
    return self.resolved.decode(ids)

  def _encode_tf(self, s):
    return self.resolved.encode_tf(s)

  def _decode_tf(self, ids):
    return self.resolved.decode_tf(ids)

  def __getattr__(self, name: str) -> Any:
    # Anything else a concrete vocabulary offers (tokenizer, tf_tokenizer, sp_model, ...).
    if name.startswith("__"):
      raise AttributeError(name)
    return getattr(self.resolved, name)

  def __eq__(self, other) -> bool:
    return isinstance(other, TaskVocabulary) or self.resolved == other

  def __hash__(self) -> int:
    return hash(TaskVocabulary)

  def __str__(self) -> str:
    spec, extra_ids = selected_vocabulary()
    return f"TaskVocabulary({spec!r}, extra_ids={extra_ids})"

  __repr__ = __str__


TASK_VOCABULARY = TaskVocabulary()
