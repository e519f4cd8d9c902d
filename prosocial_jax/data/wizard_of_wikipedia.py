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

from typing import TYPE_CHECKING, Any, Sequence

from prosocial_jax.data import reading
from prosocial_jax.data.data_root import Corpus, split_file_word
from prosocial_jax.data.download import PARLAI_DOWNLOADS, Release, Remote

if TYPE_CHECKING:
  from prosocial_jax.data.synthetic import Fixture

# Where the release comes from (`python -m prosocial_jax.data download`).
RELEASE = Release(
    "https://parl.ai/projects/wizard_of_wikipedia/", "see ParlAI", files=(Remote(
        f"{PARLAI_DOWNLOADS}/wizard_of_wikipedia/wizard_of_wikipedia.tgz",
        sha256="2a549627a83fea745efa2076a41d1c0078ad002ab2b54eae6a4e3d3d66ae24b7",
        keep=r"^(train|valid_random_split|test_random_split)\.json$"),))

WIZARD = "Wizard"


def _dialogue(path: str, index: int, position: int, value: Any) -> reading.Conversation:
  del index  # A dialogue is numbered by its place in its file.
  record = f"dialogue {position}"
  f = reading.Fields(path, record, value)
  turns = f.list("dialog", nonempty=True)
  utterances, responses = [], []
  for k, turn in enumerate(turns):
    t = reading.Fields(path, f"{record}, turn {k}", turn)
    speaker = t.string("speaker", required=True)
    utterances.append(t.string("text", required=True, nonempty=True))
    if WIZARD in speaker and k > 0:
      responses.append(k)
  topic = f.string("chosen_topic") or ""
  return reading.Conversation(index=position, id=f"{position}:{topic}" if topic else str(position),
                              utterances=tuple(utterances), responses=tuple(responses))


def _write_synthetic(out: Fixture, splits: Sequence[str], n: int) -> None:
  for split in splits:
    rng = out.text(split)
    name = "train.json" if split == "train" else f"{split_file_word(split)}_random_split.json"
    out.write_json(name, [
        {"chosen_topic": "Topic", "persona": "i like things.", "wizard_eval": 5,
         "chosen_topic_passage": [], "dialog": [
             {"speaker": f"{k % 2}_{'Wizard' if k % 2 == 0 else 'Apprentice'}", "text": u,
              "retrieved_passages": [], "retrieved_topics": []} for k, u in enumerate(d)]}
        for d in rng.dialogues(n, 4, 10, (8, 28))])


CORPUS = Corpus(name="wizard_of_wikipedia", role="casual", files=r"(?!.*topic_split).*\.json",
                read_files=reading.reader(reading.json_document(list, "dialogues"), _dialogue),
                release=RELEASE, write_synthetic=_write_synthetic)
