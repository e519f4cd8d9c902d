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

from typing import TYPE_CHECKING, Any, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import Corpus
from prosocial_jax.data.download import Release, Remote

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

_REPOSITORY = ("https://raw.githubusercontent.com/alexa/Topical-Chat/"
               "7c939229cbcf6f55f6977b341a5a2f2fe982d53f/conversations")  # a pinned commit

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://github.com/alexa/Topical-Chat", "CDLA-Sharing-1.0",
    files=tuple(Remote(f"{_REPOSITORY}/{name}.json", sha) for name, sha in (
        ("train", "39a079d8464ea5f44f0fd78dbc85fd4eed96303347cbf4f9301f823e3c0f437f"),
        ("valid_freq", "d14e8bde94fa5556d4aad8fd3fb666df674e4fef8b4193c8c3c06c72822a366b"),
        ("valid_rare", "b0f3c59584ea4ed61e368dc94feade6ba499a207a6437573b028d1f3ff918714"),
        ("test_freq", "3c65693d59e40a1fb58ead35dcfe85fbcc88ea93a4d74557df620996f72c8f08"),
        ("test_rare", "4f21a18be16e310840280678e7bb4646852573b239b69183ddf8898f40119567"))))


def _conversation(path: str, index: int, conv_id: str, value: Any) -> reading.Conversation:
  record = f"conversation {conv_id}"
  utterances = reading.Fields(path, record, value).texts("content", "message", item="message")
  return reading.Conversation(index=index, id=conv_id, utterances=tuple(utterances),
                              responses=reading.alternate_responses(len(utterances)))


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  for split in splits:
    rng = out.text(split)
    names = {"train": ["train"], "validation": ["valid_freq", "valid_rare"],
             "test": ["test_freq", "test_rare"]}[split]
    for part, name in enumerate(names):
      out.write_json(f"{name}.json", {f"t_{split}_{part}_{c}": {
          "article_url": "", "config": "A", "conversation_rating": {},
          "content": [{"message": u, "agent": f"agent_{k % 2 + 1}", "sentiment": "Neutral",
                       "knowledge_source": ["FS1"], "turn_rating": "Good"} for k, u in enumerate(d)]}
          for c, d in enumerate(rng.dialogues(max(n // len(names), 1), 10, 22))})


CORPUS = Corpus(name="topical_chat", role="casual", files=r".*\.json",
                read_files=reading.reader(reading.json_document(
                    dict, "conversations", " (id -> conversation)"), _conversation),
                release=RELEASE, write_synthetic=_write_synthetic, several_files_per_split=True)
