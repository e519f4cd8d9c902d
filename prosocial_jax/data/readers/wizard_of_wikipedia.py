"""Wizard of Wikipedia (Dinan et al., ICLR 2019) in ParlAI's release format.

`wizard_of_wikipedia.tgz` holds train.json, valid_random_split.json,
test_random_split.json (topics seen in training — ParlAI's default), the
`*_topic_split.json` files (unseen topics; not read, so each split has one file)
and data.json (everything; not read). Each is a JSON list of dialogues

    {"chosen_topic": str, "persona": str, "wizard_eval": int,
     "chosen_topic_passage": [str],
     "dialog": [{"speaker": "0_Wizard"|"1_Apprentice"|..., "text": str,
                 "checked_sentence": {...}, "retrieved_passages": [...], ...}, ...]}

Knowledge and the topic are not part of the model input. The wizard's turns are
the responses (a wizard turn that opens the dialogue is history only).
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import DataFormatError
from prosocial_jax.data.readers import split_files
from prosocial_jax.data.records import Conversation, ReadResult

CORPUS = "wizard_of_wikipedia"
WIZARD = "Wizard"


def _dialogue(path: str, index: int, value: Any) -> Conversation:
  record = f"dialogue {index}"
  f = fileio.Fields(path, record, value)
  turns = f.list("dialog", nonempty=True)
  utterances, responses = [], []
  for k, turn in enumerate(turns):
    t = fileio.Fields(path, f"{record}, turn {k}", turn)
    speaker = t.string("speaker", required=True)
    utterances.append(t.string("text", required=True, nonempty=True))
    if WIZARD in speaker and k > 0:
      responses.append(k)
  topic = f.string("chosen_topic") or ""
  return Conversation(index=index, id=f"{index}:{topic}" if topic else str(index),
                      utterances=tuple(utterances), responses=tuple(responses))


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  paths = [os.fspath(p) for p in paths]
  conversations, bad = fileio.read_json_list_files(paths, _dialogue, what="dialogues",
                                                   skip_bad_records=skip_bad_records)
  return ReadResult(conversations, bad.errors, paths)


def read_file(path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return read_files([path], skip_bad_records=skip_bad_records)


def accept_file(name: str) -> bool:
  lower = name.lower()
  return lower.endswith(".json") and "topic_split" not in lower


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return split_files.load_split(CORPUS, split, data_root, read_files=read_files,
                                accept=accept_file, skip_bad_records=skip_bad_records)
