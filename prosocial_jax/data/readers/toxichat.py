"""ToxiChat (Baheti et al., EMNLP 2021) in its release format, for zero-shot evaluation.

The authors' repository ships `data/ToxiChat/{train,dev,test}.jsonl`: JSON lines,
one Reddit thread per line,

    {"reddit_thread": [{"turn_id": int, "text": str, "offense_label": "Safe"|"Offensive",
                        "offense_targets": [str], "stance_label_towards_turn_<k>": str}, ...],
     "final_dgpt_response": {... the same fields, "coherence", "chatbot_model": "dgpt"},
     "final_gpt3_response": {... "chatbot_model": "gpt3"}}

Each thread keeps its turns and its two chatbot replies (either may be absent; a
few GPT-3 replies in the release are empty strings, kept as they are).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable

from prosocial_jax.data import fileio
from prosocial_jax.data.errors import BadRecords
from prosocial_jax.data.readers import split_files
from prosocial_jax.data.records import ReadResult

CORPUS = "toxichat"
OFFENSE_LABELS = ("Safe", "Offensive")
REPLIES = ("final_dgpt_response", "final_gpt3_response")


@dataclasses.dataclass(frozen=True)
class ToxiTurn:
  text: str
  offense_label: str
  offense_targets: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Thread:
  """A Reddit thread: its turns, and the chatbot replies to it by model ('dgpt', 'gpt3')."""
  index: int
  turns: tuple[ToxiTurn, ...]
  replies: dict[str, ToxiTurn]


def _turn(path: str, record: str, value: Any) -> ToxiTurn:
  f = fileio.Fields(path, record, value)
  # Empty text is valid: the release has GPT-3 replies that are empty (labelled Safe).
  return ToxiTurn(text=f.string("text", required=True),
                  offense_label=f.choice("offense_label", OFFENSE_LABELS),
                  offense_targets=f.strings("offense_targets") or ())


def _thread(path: str, index: int, record: str, value: Any) -> Thread:
  f = fileio.Fields(path, record, value)
  turns = tuple(_turn(path, f"{record}, turn {k}", t)
                for k, t in enumerate(f.list("reddit_thread", nonempty=True)))
  replies = {}
  for key in REPLIES:
    reply = f.object(key, required=False)
    if reply is not None:
      replies[key.split("_")[1]] = _turn(path, f"{record}, {key}", reply)
  return Thread(index=index, turns=turns, replies=replies)


def read_files(paths: Iterable[str | os.PathLike], *,
               skip_bad_records: bool = False) -> ReadResult[Thread]:
  bad = BadRecords(skip_bad_records)
  threads: list[Thread] = []
  paths = [os.fspath(p) for p in paths]
  position = 0
  for path in paths:
    for number, value in fileio.iter_json_lines(path, fileio.read_text(path), bad):
      t = fileio.guarded(bad, lambda: _thread(path, position, f"line {number}", value))
      position += 1
      if t is not None:
        threads.append(t)
  bad.report(", ".join(paths))
  return ReadResult(threads, bad.errors, paths)


def read_file(path: str | os.PathLike, *, skip_bad_records: bool = False) -> ReadResult[Thread]:
  return read_files([path], skip_bad_records=skip_bad_records)


def accept_file(name: str) -> bool:
  return name.lower().endswith((".jsonl", ".json"))


def load_split(split: str, data_root: str | os.PathLike | None = None, *,
               skip_bad_records: bool = False) -> ReadResult[Thread]:
  return split_files.load_split(CORPUS, split, data_root, read_files=read_files,
                                accept=accept_file, skip_bad_records=skip_bad_records)
