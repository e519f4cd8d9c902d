"""The vocabulary CLI reproduces the shipped model and keeps each safety label one piece."""

import os

import sentencepiece as spm

import tasks.vocabularies
from prosocial_jax.data import train_vocab
from prosocial_jax.data.data_root import sample_data_root
from prosocial_jax.data.labels import SAFETY_LABELS

SHIPPED = tasks.vocabularies.DEFAULT_VOCAB_PATH


def test_rerun_reproduces_shipped_model(tmp_path, capsys):
  out = str(tmp_path / "vocab" / "prosocial_sample.model")
  assert train_vocab.main(["--data_root", sample_data_root(), "--output", out, "--vocab_size", "1024"]) == 0
  assert "1024 pieces" in capsys.readouterr().out
  with open(out, "rb") as f, open(SHIPPED, "rb") as g:
    assert f.read() == g.read()
  with open(out[:-len(".model")] + ".vocab") as f, open(SHIPPED[:-len(".model")] + ".vocab") as g:
    assert f.read() == g.read()


def test_shipped_model_properties():
  sp = spm.SentencePieceProcessor(model_file=SHIPPED)
  assert sp.get_piece_size() == 1024
  assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)
  for label in SAFETY_LABELS:
    assert len(sp.encode(label)) == 1, label
    assert sp.encode(f"{label} It's wrong.")[0] == sp.piece_to_id(label)
  unseen = "Zürich — 東京 🙂"
  ids = sp.encode(unseen)
  assert sp.unk_id() not in ids  # byte fallback
  assert sp.decode(ids) == unseen


def test_output_prefix_without_suffix(tmp_path):
  prefix = str(tmp_path / "small")
  path = train_vocab.train_vocab(sample_data_root(), prefix, vocab_size=400)
  assert path == prefix + ".model" and os.path.exists(prefix + ".vocab")
  assert spm.SentencePieceProcessor(model_file=path).get_piece_size() == 400
