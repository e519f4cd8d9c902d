"""Topical-Chat (Gopalakrishnan et al., Interspeech 2019) in its release format.

The official repository's `conversations/` holds train.json, valid_freq.json,
valid_rare.json, test_freq.json and test_rare.json; the two files of a split are
read together (frequent topics first, as sorted by name). Each file is one JSON
object

    {conversation_id: {"article_url": str, "config": str, "conversation_rating": ...,
                       "content": [{"message": str, "agent": "agent_1"|"agent_2",
                                    "sentiment": str, "knowledge_source": [str],
                                    "turn_rating": str}, ...]}}

Knowledge (the reading sets) is not part of the model input. As in ParlAI, turns
pair up (1st → 2nd, 3rd → 4th, ...): every second message is a response.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import BadRecords, DataFormatError
from prosocial_jax.data.readers import split_files
from prosocial_jax.data.records import Conversation, ReadResult, alternate_responses

CORPUS = "topical_chat"


def _conversation(path: str, index: int, conv_id: str, value: Any) -> Conversation:
  record = f"conversation {conv_id}"
  f = fileio.Fields(path, record, value)
  content = f.list("content", nonempty=True)
  utterances = []
  for k, message in enumerate(content):
    m = fileio.Fields(path, f"{record}, message {k}", message)
    utterances.append(m.string("message", required=True, nonempty=True))
  return Conversation(index=index, id=conv_id, utterances=tuple(utterances),
                      responses=alternate_responses(len(utterances)))


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  bad = BadRecords(skip_bad_records)
  conversations: list[Conversation] = []
  paths = [os.fspath(p) for p in paths]
  position = 0
  for path in paths:
    data = fileio.parse_json(path, fileio.read_text(path),
                             expected="one JSON object of conversations")
    if not isinstance(data, dict):
      raise DataFormatError(path, f"the top level must be a JSON object of conversations "
                            f"(id -> conversation), got {fileio.json_type(data)}")
    for conv_id, value in data.items():
      c = fileio.guarded(bad, lambda: _conversation(path, position, conv_id, value))
      position += 1
      if c is not None:
        conversations.append(c)
  bad.report(", ".join(paths))
  return ReadResult(conversations, bad.errors, paths)


def read_file(path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return read_files([path], skip_bad_records=skip_bad_records)


def accept_file(name: str) -> bool:
  return name.lower().endswith(".json")


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return split_files.load_split(CORPUS, split, data_root, read_files=read_files,
                                accept=accept_file, multiple=True,
                                skip_bad_records=skip_bad_records)
