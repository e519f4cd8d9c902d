"""The corpus registry: each corpus declared once, in its own module, and the file names
each reader takes."""

import importlib

import pytest

from prosocial_jax.data import CORPORA, corpora_of, corpus
from prosocial_jax.data.data_root import Corpus


def test_registry_spot_check():
  # Typed out by hand, so a registry that loses, renames or regroups a corpus fails.
  assert list(CORPORA) == [
      "prosocial_dialog", "daily_dialog", "empathetic_dialogues", "blended_skill_talk",
      "topical_chat", "persona_chat", "wizard_of_wikipedia", "social_chem_101",
      "moral_integrity_corpus", "commonsense_norm_bank", "toxichat"]
  assert corpora_of("casual") == ("daily_dialog", "empathetic_dialogues", "blended_skill_talk",
                                  "topical_chat", "persona_chat", "wizard_of_wikipedia")
  assert corpora_of("social_norms") == ("social_chem_101", "moral_integrity_corpus",
                                        "commonsense_norm_bank")


@pytest.mark.parametrize("name", list(CORPORA))
def test_each_corpus_is_declared_in_its_module(name):
  assert importlib.import_module(f"prosocial_jax.data.{name}").CORPUS is CORPORA[name] is corpus(name)


def test_unknown_names():
  with pytest.raises(ValueError, match="Unknown corpus 'dailydialog'"):
    corpus("dailydialog")
  with pytest.raises(ValueError, match="Unknown role 'chitchat'"):
    corpora_of("chitchat")
  with pytest.raises(ValueError, match="unknown role 'chitchat'"):
    Corpus("x", "chitchat", r".*", read_files=None, release=None, write_synthetic=None)


# corpus -> (file names its reader takes, file names of the release it passes over)
FILES = {
    "prosocial_dialog": (["train.json", "valid.JSONL", "train-00000-of-00002.parquet"], ["README.txt"]),
    "daily_dialog": (["train.json", "valid.jsonl", "dialogues_train.txt"],
                     ["dialogues_act_train.txt", "dialogues_emotion_train.txt"]),
    "empathetic_dialogues": (["valid.csv"], ["valid.json"]),
    "persona_chat": (["train_self_original.txt", "valid_self_original_no_cands.txt"],
                     ["train_both_original.txt", "train_self_revised.txt", "my_train_self_original.txt"]),
    "wizard_of_wikipedia": (["valid_random_split.json", "data.json"], ["valid_topic_split.json"]),
    "social_chem_101": (["social-chem-101.v1.0.tsv"], ["social-chem-101.v1.0.csv"]),
    "toxichat": (["dev.jsonl", "dev.json"], ["dev.csv"]),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_file_names_the_reader_takes(name):
  takes, passes_over = FILES[name]
  assert [n for n in takes if not CORPORA[name].accepts(n)] == []
  assert [n for n in passes_over if CORPORA[name].accepts(n)] == []
