"""BlendedSkillTalk (Smith et al., ACL 2020) in ParlAI's release format.

`blended_skill_talk.tar.gz` holds train.json, valid.json and test.json, each a JSON
list of episodes

    {"personas": [[str, str], [str, str]], "context_dataset": str,
     "free_turker_utterance": str, "guided_turker_utterance": str,
     "additional_context": str, "dialog": [[speaker_index, str], ...], ...}

The two seed utterances (shown to both crowdworkers as the conversation so far)
come first in the history; the dialog follows, the free worker speaking first.
As in ParlAI, the guided worker's turns (every second dialog turn) are the
responses. Personas and the additional context are not part of the model input.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import DataFormatError
from prosocial_jax.data.readers import split_files
from prosocial_jax.data.records import Conversation, ReadResult

CORPUS = "blended_skill_talk"
SEEDS = ("free_turker_utterance", "guided_turker_utterance")


def _episode(path: str, index: int, episode: Any) -> Conversation:
  record = f"episode {index}"
  f = fileio.Fields(path, record, episode)
  seeds = [s for s in (f.string(name) for name in SEEDS) if s and s.strip()]
  dialog = f.list("dialog", nonempty=True)
  utterances = list(seeds)
  for k, turn in enumerate(dialog):
    if not (isinstance(turn, list) and len(turn) == 2):
      raise DataFormatError(path, f"turn {k}: expected [speaker, text], got "
                            f"{fileio.json_type(turn)}", record=record, field="dialog")
    if not isinstance(turn[1], str) or not turn[1].strip():
      raise DataFormatError(path, f"turn {k}: expected non-empty text, got {turn[1]!r}",
                            record=record, field="dialog")
    utterances.append(turn[1])
  responses = tuple(len(seeds) + k for k in range(1, len(dialog), 2))
  return Conversation(index=index, id=str(index), utterances=tuple(utterances), responses=responses)


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  paths = [os.fspath(p) for p in paths]
  conversations, bad = fileio.read_json_list_files(paths, _episode, what="episodes",
                                                   skip_bad_records=skip_bad_records)
  return ReadResult(conversations, bad.errors, paths)


def read_file(path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return read_files([path], skip_bad_records=skip_bad_records)


def accept_file(name: str) -> bool:
  return name.lower().endswith(".json")


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[Conversation]:
  return split_files.load_split(CORPUS, split, data_root, read_files=read_files,
                                accept=accept_file, skip_bad_records=skip_bad_records)
