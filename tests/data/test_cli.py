"""`python -m prosocial_jax.data`: stats, synthetic, train-vocab (download: test_download.py)."""

import os

import sentencepiece as spm

from prosocial_jax.data import CORPORA, corpus, synthetic, train_vocab
from prosocial_jax.data.__main__ import corpus_stats, main


def test_synthetic_then_stats(tmp_path, capsys):
  root = str(tmp_path / "data")
  assert main(["synthetic", root, "--dialogues", "3"]) == 0
  assert sorted(os.listdir(root)) == sorted(CORPORA)
  assert main(["stats", "all", "--data_root", root]) == 0
  out = capsys.readouterr().out
  assert "daily_dialog             validation        3 records" in out
  assert "BAD DATA" not in out and "missing" not in out


def test_stats_counts_and_reports(tmp_path, capsys):
  root = synthetic.write_data_root(str(tmp_path), dialogues=4, corpora=["toxichat", "daily_dialog"])
  with open(os.path.join(root, "daily_dialog", "train.json"), "a") as f:
    f.write("{broken\n")
  stats = corpus_stats("daily_dialog", "train", root, skip_bad_records=True)
  assert stats["records"] == 4 and stats["skipped"] == 1
  assert main(["stats", "daily_dialog", "--split", "train", "--data_root", root]) == 1
  assert "BAD DATA" in capsys.readouterr().out
  assert main(["stats", "daily_dialog", "--split", "train", "--data_root", root, "--skip_bad_records"]) == 0
  assert "(1 bad records skipped)" in capsys.readouterr().out
  assert main(["stats", "prosocial_dialog", "--data_root", root]) == 2  # missing
  assert "python -m prosocial_jax.data download prosocial_dialog" in capsys.readouterr().out


def test_train_vocab_on_several_corpora_is_reproducible(tmp_path, capsys):
  root = synthetic.write_data_root(str(tmp_path / "data"), dialogues=30,
                                   corpora=["prosocial_dialog", "daily_dialog", "social_chem_101"])
  args = ["train-vocab", "--data_root", root, "--vocab_size", "600", "--corpus", "prosocial_dialog",
          "--corpus", "daily_dialog", "--corpus", "social_chem_101"]
  assert main(args + ["--output", str(tmp_path / "a")]) == 0
  assert main(args + ["--output", str(tmp_path / "b")]) == 0
  assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
  sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "a.model"))
  assert sp.get_piece_size() <= 600 and len(sp.encode("__needs_caution__")) == 1
  sentences = list(train_vocab.corpus_sentences("daily_dialog",
                                                corpus("daily_dialog").load_split("train", root)))
  assert sentences[0].startswith(("User: ", "Bot: "))


def test_data_root_sample_is_the_shipped_sample(capsys):
  import pytest

  from prosocial_jax.data.data_root import sample_data_root
  assert main(["stats", "prosocial_dialog", "--split", "validation", "--data_root", "sample"]) == 0
  out = capsys.readouterr().out
  assert f"data root: {sample_data_root()}" in out
  assert "prosocial_dialog         validation       12 records        60 utterances" in out
  # The one corpus asked for, missing: status 2 (`all` lists what is missing, status 0).
  assert main(["stats", "daily_dialog", "--data_root", "sample"]) == 2
  assert "daily_dialog             train      missing: Corpus 'daily_dialog' not found" in (
      capsys.readouterr().out)
  assert main(["stats", "all", "--data_root", "sample"]) == 0
  capsys.readouterr()
  with pytest.raises(SystemExit):  # never download into the package
    main(["download", "prosocial_dialog", "--data_root", "sample"])
  assert "the shipped sample is not a download target" in capsys.readouterr().err
