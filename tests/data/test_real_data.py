"""The readers on the real files in ../shared/data that are in an original release format,
checked against the counts in each folder's SOURCE.md. They run by default wherever
../shared/data is (as in CI; about 4 s on 2 cores) and skip, saying so, where it is not:

    pytest -m real_data tests/data          # only these (and the other real-data tests)
    pytest -m "not real_data"               # everything else

Read: DailyDialog (ParlAI's JSON conversion, as ParlAI distributes it), Topical-Chat
and ToxiChat (the official files), ProsocialDialog's Hugging Face-schema example file.
Not read: BlendedSkillTalk, EmpatheticDialogues and PersonaChat there are reformatted
copies (their SOURCE.md says so), and the ProsocialDialog CSVs are experiment logs.
"""

import collections
import pathlib

import pytest
import seqio

import tasks
from prosocial_jax.data.daily_dialog import CORPUS as daily_dialog
from prosocial_jax.data.download import file_sha256
from prosocial_jax.data.prosocial_dialog import CORPUS as prosocial_dialog
from prosocial_jax.data.topical_chat import CORPUS as topical_chat
from prosocial_jax.data.toxichat import CORPUS as toxichat

SHARED = (pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()

pytestmark = [pytest.mark.real_data,
              pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (the real "
                                 "data lies there beside the repository, as in CI)")]


def folder(corpus):
  path = SHARED / corpus
  if not path.is_dir():
    pytest.skip(f"{path} is absent")
  return path


def utterances(result):
  return sum(len(c.utterances) for c in result)


@pytest.mark.parametrize("name,dialogues,count", [("valid.jsonl", 1000, 8069), ("test.jsonl", 1000, 7740)])
def test_daily_dialog(name, dialogues, count):
  result = daily_dialog.read_file(folder("daily_dialog") / name)
  assert (len(result), utterances(result)) == (dialogues, count)
  assert result.skipped_count == 0


@pytest.mark.parametrize("name,count", [("valid_freq", 11681), ("valid_rare", 11692),
                                        ("test_freq", 11760), ("test_rare", 11770)])
def test_topical_chat(name, count):
  path = folder("topical_chat") / f"{name}.json"
  result = topical_chat.read_file(path)
  assert (len(result), utterances(result)) == (539, count)
  # The release's pinned checksum is this file's.
  published = {r.filename: r.sha256 for r in topical_chat.release.files}
  assert file_sha256(str(path)) == published[f"{name}.json"]


def test_topical_chat_split_reads_both_files():
  folder("topical_chat")
  result = topical_chat.load_split("validation", str(SHARED))
  assert (len(result), utterances(result)) == (1078, 11681 + 11692)


@pytest.mark.parametrize("name,threads,dgpt,gpt3", [
    ("train.jsonl", 1400, (127, 1273), (276, 1124)),
    ("dev.jsonl", 300, (31, 269), (67, 233)),
    ("test.jsonl", 300, (21, 279), (46, 254)),
])
def test_toxichat(name, threads, dgpt, gpt3):
  path = folder("toxichat") / name
  result = toxichat.read_file(path)
  assert len(result) == threads
  labels = collections.Counter((m, r.offense_label) for t in result for m, r in t.replies.items())
  assert (labels["dgpt", "Offensive"], labels["dgpt", "Safe"]) == dgpt
  assert (labels["gpt3", "Offensive"], labels["gpt3", "Safe"]) == gpt3
  published = {r.filename: r.sha256 for r in toxichat.release.files}
  assert file_sha256(str(path)) == published[name]


def test_prosocial_dialog_hugging_face_schema():
  path = folder("prosocial_dialog") / "dialogstudio_examples" / "original_examples.json"
  if not path.exists():
    pytest.skip(f"{path} is absent")
  dialogues = prosocial_dialog.read_file(path)
  assert [(d.index, len(d.turns)) for d in dialogues] == [(0, 3), (1, 2)]  # 5 rows = 2 dialogues
  assert {t.safety_label for d in dialogues for t in d.turns} == {"__needs_caution__"}


def test_tasks_on_real_files():
  folder("toxichat"), folder("daily_dialog")
  tasks.set_data_root(SHARED)
  try:
    count = lambda name: sum(1 for _ in seqio.get_mixture_or_task(name).get_dataset(
        None, split="validation", shuffle=False))
    assert count("daily_dialog_prost") == 8069 - 1000  # every utterance after the first
    assert count("toxichat_safety") == 1308  # 708 Reddit turns + 600 chatbot replies
  finally:
    tasks.set_data_root(None)
