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
import json
from typing import TYPE_CHECKING, Any, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import Corpus
from prosocial_jax.data.download import Release, Remote

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

_REPOSITORY = ("https://raw.githubusercontent.com/abaheti95/ToxiChat/"
               "c1ffebd76596481b26aab35074816641b076f992/data/ToxiChat")  # a pinned commit

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://github.com/abaheti95/ToxiChat", "CC BY-SA 4.0",
    files=tuple(Remote(f"{_REPOSITORY}/{split}.jsonl", sha) for split, sha in (
        ("train", "806da95ba491888626a18c0324e9d6ec906450ba9fef92b54343ebf44e48682a"),
        ("dev", "591742cdf73b9fcae4f555cbccb5d49237b470172dd0fd07a4829cebc0060ace"),
        ("test", "13e67afb0806b1865d446ea3d730578d750d9be4127fdd872ef7cc903b52f9bb"))))

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

  @property
  def utterance_count(self) -> int:
    return len(self.turns) + len(self.replies)


def _turn(path: str, record: str, value: Any) -> ToxiTurn:
  f = reading.Fields(path, record, value)
  # Empty text is valid: the release has GPT-3 replies that are empty (labelled Safe).
  return ToxiTurn(text=f.string("text", required=True),
                  offense_label=f.choice("offense_label", OFFENSE_LABELS),
                  offense_targets=f.strings("offense_targets") or ())


def _thread(path: str, index: int, line: int, value: Any) -> Thread:
  record = f"line {line}"
  f = reading.Fields(path, record, value)
  turns = tuple(_turn(path, f"{record}, turn {k}", t)
                for k, t in enumerate(f.list("reddit_thread", nonempty=True)))
  replies = {}
  for key in REPLIES:
    reply = f.object(key, required=False)
    if reply is not None:
      replies[key.split("_")[1]] = _turn(path, f"{record}, {key}", reply)
  return Thread(index=index, turns=turns, replies=replies)


def thread_records(threads: Sequence[Thread]) -> list[dict[str, Any]]:
  """One `python -m prosocial_jax.infer` input line per thread: `context` (its turns,
  oldest first, as the model reads a dialogue) plus what downstream scoring of the
  responses needs (the turns' offense labels, the release's chatbot replies)."""
  return [{"thread": t.index, "context": [turn.text.strip() for turn in t.turns],
           "offense_labels": [turn.offense_label for turn in t.turns],
           **{f"{model}_response": reply.text.strip() for model, reply in t.replies.items()},
           **{f"{model}_offense_label": reply.offense_label
              for model, reply in t.replies.items()}}
          for t in threads]


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  for split in splits:
    rng = out.text(split)

    def turn(i):
      return {"turn_id": i, "text": " " + rng.sentence(6, 30) + " ",
              "offense_label": rng.choice(["Safe", "Safe", "Offensive"]), "offense_targets": []}

    lines = [json.dumps({"reddit_thread": [turn(i + 1) for i in range(rng.randint(1, 3))],
                         "final_dgpt_response": dict(turn(4), chatbot_model="dgpt"),
                         "final_gpt3_response": dict(turn(4), chatbot_model="gpt3")})
             for _ in range(n)]
    out.write_lines(("dev" if split == "validation" else split) + ".jsonl", lines)


CORPUS = Corpus(name="toxichat", role="evaluation", files=r".*\.jsonl?",
                read_files=reading.reader(reading.json_lines, _thread), release=RELEASE,
                write_synthetic=_write_synthetic)
