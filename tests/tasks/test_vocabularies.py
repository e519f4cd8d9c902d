"""The tasks' default vocabulary and its environment override."""

import os
import shutil

import seqio

from prosocial_jax.data.labels import SAFETY_LABELS
from tasks import vocabularies


def test_default_vocabulary():
  assert os.path.exists(vocabularies.DEFAULT_VOCAB_PATH)
  vocab = vocabularies.get_default_vocabulary()
  assert isinstance(vocab, seqio.SentencePieceVocabulary)
  assert vocab is vocabularies.get_default_vocabulary()
  assert vocab.vocab_size == 1024
  assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
  for label in SAFETY_LABELS:
    ids = vocab.encode(label)
    assert len(ids) == 1, label
    assert vocab.decode(ids) == label
    assert vocab.encode_tf(label).numpy().tolist() == ids


def test_env_override(tmp_path, monkeypatch):
  copy = str(tmp_path / "mine.model")
  shutil.copy(vocabularies.DEFAULT_VOCAB_PATH, copy)
  monkeypatch.setenv(vocabularies.VOCAB_ENV_VAR, copy)
  assert vocabularies.vocab_path() == copy
  assert vocabularies.get_default_vocabulary().sentencepiece_model_file == copy
  monkeypatch.delenv(vocabularies.VOCAB_ENV_VAR)
  assert vocabularies.vocab_path() == vocabularies.DEFAULT_VOCAB_PATH
