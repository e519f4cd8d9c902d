"""The tasks' vocabulary: chosen per run (setter, gin, env, default) without re-registering."""

import os
import shutil

import gin
import pytest
import seqio

import tasks
from prosocial_jax.data.labels import SAFETY_LABELS
from tasks import vocabularies
from tasks.prosocial_dialog import CANARY_TASK


@pytest.fixture(autouse=True)
def _reset(monkeypatch):
  monkeypatch.delenv(vocabularies.VOCAB_ENV_VAR, raising=False)
  monkeypatch.delenv(vocabularies.EXTRA_IDS_ENV_VAR, raising=False)
  yield
  tasks.set_vocabulary(None)
  gin.clear_config()


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


def test_task_features_follow_the_choice(tmp_path, monkeypatch):
  task_vocab = seqio.get_mixture_or_task(CANARY_TASK).output_features["targets"].vocabulary
  assert task_vocab.sentencepiece_model_file == vocabularies.DEFAULT_VOCAB_PATH
  assert task_vocab.encode("__casual__") == vocabularies.get_default_vocabulary().encode("__casual__")

  copy = str(tmp_path / "mine.model")
  shutil.copy(vocabularies.DEFAULT_VOCAB_PATH, copy)
  monkeypatch.setenv(vocabularies.VOCAB_ENV_VAR, copy)
  assert vocabularies.vocab_path() == copy
  assert task_vocab.sentencepiece_model_file == copy  # the env var, read at use

  gin.parse_config("tasks.vocabularies.vocabulary_spec.spec = 'byte'")
  assert getattr(task_vocab, "sentencepiece_model_file", None) is None  # gin beats the env var
  assert task_vocab.vocab_size == 259 and task_vocab.encode("hi") == [107, 108]

  tasks.set_vocabulary(vocabularies.DEFAULT_VOCAB_PATH, extra_ids=100)  # the setter beats gin
  assert task_vocab.vocab_size == 1124 and task_vocab.extra_ids == 100
  assert task_vocab.sentencepiece_model_file == vocabularies.DEFAULT_VOCAB_PATH
  assert task_vocab.tokenizer.get_piece_size() == 1124  # other attributes pass through

  tasks.set_vocabulary(None)
  gin.clear_config()
  assert task_vocab.sentencepiece_model_file == copy
  monkeypatch.setenv(vocabularies.EXTRA_IDS_ENV_VAR, "4")
  assert task_vocab.vocab_size == 1028


def test_byte_vocabulary_through_a_task(use_synthetic):
  tasks.set_vocabulary("byte")
  task = seqio.get_mixture_or_task(CANARY_TASK)
  ex = next(task.get_dataset({"inputs": 64, "targets": 32}, split="validation", shuffle=False)
            .as_numpy_iterator())
  assert ex["targets"].tolist() == [b + 3 for b in ex["targets_pretokenized"][:31]] + [1]
  assert task.output_features["inputs"].vocabulary == seqio.get_mixture_or_task(
      "daily_dialog_canary").output_features["inputs"].vocabulary
