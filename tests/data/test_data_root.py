"""Data-root resolution, corpus folders, split files, and the shipped sample's root."""

import os

import gin
import pytest

from prosocial_jax.data import data_root as dr
from prosocial_jax.data.errors import AmbiguousSplitError, MissingDataError


def test_resolution_order(monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.delenv(dr.ENV_VAR, raising=False)
  assert dr.resolve_data_root() == str(tmp_path / "home" / "prosocial_jax_data")
  monkeypatch.setenv(dr.ENV_VAR, str(tmp_path / "env"))
  assert dr.resolve_data_root() == str(tmp_path / "env")
  assert dr.resolve_data_root(tmp_path / "explicit") == str(tmp_path / "explicit")
  assert dr.resolve_data_root("gs://bucket/data") == "gs://bucket/data"
  monkeypatch.setenv(dr.ENV_VAR, "")  # empty counts as unset
  assert dr.resolve_data_root() == str(tmp_path / "home" / "prosocial_jax_data")


def test_missing_corpus_names_folder_and_command(monkeypatch, tmp_path):
  monkeypatch.setenv(dr.ENV_VAR, str(tmp_path))
  with pytest.raises(MissingDataError) as info:
    dr.corpus_dir("prosocial_dialog")
  message = str(info.value)
  assert str(tmp_path / "prosocial_dialog") in message
  assert "python -m prosocial_jax.data download prosocial_dialog" in message
  assert "PROSOCIAL_JAX_DATA" in message
  assert isinstance(info.value, FileNotFoundError)


def test_corpus_dir_found(tmp_path):
  (tmp_path / "daily_dialog").mkdir()
  assert dr.corpus_dir("daily_dialog", str(tmp_path)) == str(tmp_path / "daily_dialog")


def _touch(folder, *names):
  folder.mkdir(exist_ok=True)
  for name in names:
    (folder / name).write_text("[]")
  return folder


def test_split_names():
  assert dr.SPLITS == ("train", "validation", "test")
  assert [dr.canonical_split(s) for s in ("train", "valid", "validation", "dev", "test", "DEV")] == [
      "train", "validation", "validation", "validation", "test", "validation"]
  assert [dr.split_file_word(s) for s in dr.SPLITS] == ["train", "valid", "test"]


def test_find_split_files_by_name(tmp_path):
  folder = _touch(tmp_path / "c", "train.json", "valid.json", "test.json", "README.md", ".train.json.swp")
  assert dr.find_split_files(folder, "train") == [str(folder / "train.json")]
  for alias in ("validation", "valid", "dev"):
    assert dr.find_split_files(folder, alias) == [str(folder / "valid.json")]
  assert dr.find_split_files(folder, "test") == [str(folder / "test.json")]
  other = _touch(tmp_path / "d", "prosocial_dialog_v1_dev.jsonl", "dialogues_train.txt")
  assert dr.find_split_files(other, "validation") == [str(other / "prosocial_dialog_v1_dev.jsonl")]
  assert dr.find_split_files(other, "train") == [str(other / "dialogues_train.txt")]


def test_find_split_files_none_or_several(tmp_path):
  folder = _touch(tmp_path / "c", "fsb_valid.json", "knowee_valid.json", "train.json")
  with pytest.raises(AmbiguousSplitError, match=r"fsb_valid\.json.*knowee_valid\.json"):
    dr.find_split_files(folder, "validation")
  with pytest.raises(MissingDataError, match=r"No 'test' split file .*found \['fsb_valid"):
    dr.find_split_files(folder, "test")
  with pytest.raises(ValueError, match="Unknown split 'eval'"):
    dr.find_split_files(folder, "eval")


@gin.configurable("test_data_root_consumer")
def _consumer(data_root=None):
  return data_root


def test_sample_data_root_and_gin():
  root = dr.sample_data_root()
  assert os.path.isdir(os.path.join(root, "prosocial_dialog"))
  try:
    gin.parse_config("DATA_ROOT = @sample_data_root()\ntest_data_root_consumer.data_root = %DATA_ROOT")
    assert _consumer() == root
  finally:
    gin.clear_config()


def test_find_split_files_accept_and_multiple(tmp_path):
  folder = _touch(tmp_path / "c", "valid_freq.json", "valid_rare.json", "dialogues_act_valid.txt",
                  "train.json.part")
  assert dr.find_split_files(folder, "validation", accept=lambda n: n.endswith(".json"),
                             multiple=True) == [str(folder / "valid_freq.json"), str(folder / "valid_rare.json")]
  with pytest.raises(AmbiguousSplitError):
    dr.find_split_files(folder, "validation", accept=lambda n: n.endswith(".json"))
  with pytest.raises(MissingDataError, match="No 'train' split file"):  # the .part is not data
    dr.find_split_files(folder, "train", accept=lambda n: n.endswith(".json"))


def test_find_data_file(tmp_path):
  folder = _touch(tmp_path / "c", "social-chem-101.v1.0.tsv", "README.md")
  assert dr.find_data_file(folder, lambda n: n.endswith(".tsv"), "x.tsv") == str(folder / "social-chem-101.v1.0.tsv")
  _touch(folder, "copy.tsv")
  with pytest.raises(AmbiguousSplitError, match="Several data files"):
    dr.find_data_file(folder, lambda n: n.endswith(".tsv"), "x.tsv")
  with pytest.raises(MissingDataError, match="expected MIC.csv"):
    dr.find_data_file(folder, lambda n: n.endswith(".csv"), "MIC.csv")
