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

from typing import TYPE_CHECKING, Any, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import Corpus, split_file_word
from prosocial_jax.data.download import PARLAI_DOWNLOADS, Release, Remote
from prosocial_jax.data.errors import DataFormatError

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://parl.ai/projects/bst/", "see ParlAI", files=(Remote(
        f"{PARLAI_DOWNLOADS}/blended_skill_talk/blended_skill_talk.tar.gz",
        sha256="5fbed0068ee89e2d43b93c3ecb341e784617033efa5e8e911a219d4eda6134a6",
        keep=r"^(train|valid|test)\.json$"),))

SEEDS = ("free_turker_utterance", "guided_turker_utterance")


def _episode(path: str, index: int, position: int, episode: Any) -> reading.Conversation:
  del index  # An episode is numbered by its place in its file.
  record = f"episode {position}"
  f = reading.Fields(path, record, episode)
  seeds = [s for s in (f.string(name) for name in SEEDS) if s and s.strip()]
  dialog = f.list("dialog", nonempty=True)
  utterances = list(seeds)
  for k, turn in enumerate(dialog):
    if not (isinstance(turn, list) and len(turn) == 2):
      raise DataFormatError(path, f"turn {k}: expected [speaker, text], got "
                            f"{reading.json_type(turn)}", record=record, field="dialog")
    if not isinstance(turn[1], str) or not turn[1].strip():
      raise DataFormatError(path, f"turn {k}: expected non-empty text, got {turn[1]!r}",
                            record=record, field="dialog")
    problem = reading.unicode_problem(turn[1])
    if problem:
      raise DataFormatError(path, f"turn {k}: {problem}", record=record, field="dialog")
    utterances.append(turn[1])
  responses = tuple(len(seeds) + k for k in range(1, len(dialog), 2))
  return reading.Conversation(index=position, id=str(position), utterances=tuple(utterances),
                              responses=responses)


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  for split in splits:
    rng = out.text(split)
    out.write_json(f"{split_file_word(split)}.json", [
        {"personas": [[rng.sentence(4, 8)] * 2] * 2, "context_dataset": "convai2",
         "free_turker_utterance": rng.sentence(6, 14),
         "guided_turker_utterance": rng.sentence(6, 14), "additional_context": "",
         "dialog": [[k % 2, u] for k, u in enumerate(d)]}
        for d in rng.dialogues(n, 4, 12)])


CORPUS = Corpus(name="blended_skill_talk", role="casual", files=r".*\.json",
                read_files=reading.reader(reading.json_document(list, "episodes"), _episode),
                release=RELEASE, write_synthetic=_write_synthetic)
