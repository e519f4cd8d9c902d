"""ProsocialDialog's Hugging Face format (JSON lines, JSON rows, JSON columns, Parquet):
rows grouped into dialogues, histories rebuilt, and the same result as the direct format."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prosocial_jax.data.errors import DataFormatError
from prosocial_jax.data.prosocial_dialog import CORPUS as pd
from tasks import prosocial_dialog as examples


def row(dialogue_id, response_id, context, response, label, rots, done=False):
  return {"context": context, "response": response, "rots": rots, "safety_label": label,
          "safety_annotations": ["needs caution"] * 3, "safety_annotation_reasons": ["a", "b", "c"],
          "source": "sbic", "etc": "", "dialogue_id": dialogue_id, "response_id": response_id,
          "episode_done": done}


# Out of order on purpose: dialogue 7's rows are interleaved and unsorted.
ROWS = [
    row(7, 1, "Fine, I'll ask her first.", "Good idea.", "__casual__", [], done=True),
    row(3, 0, "I read my sister's diary.", "That's private, you should apologize.",
        "__needs_caution__", ["It's wrong to invade privacy.", "You should respect your family."]),
    row(7, 0, "I'll borrow my mom's car without asking.", "She may need it.",
        "__possibly_needs_caution__", ["You should ask before borrowing."]),
    row(3, 1, "She'll never know.", "It's still not okay.", "__probably_needs_caution__",
        ["It's wrong to lie, even by omission."], done=True),
]
DIRECT = [
    [{"text": "I read my sister's diary.", "labels": ["That's private, you should apologize."],
      "rots": ["It's wrong to invade privacy.", "You should respect your family."],
      "safety_label": "__needs_caution__", "safety_annotations": ["needs caution"] * 3,
      "safety_annotation_reasons": ["a", "b", "c"], "source": "sbic", "etc": "", "episode_done": False},
     {"text": "She'll never know.", "labels": ["It's still not okay."],
      "rots": ["It's wrong to lie, even by omission."], "safety_label": "__probably_needs_caution__",
      "safety_annotations": ["needs caution"] * 3, "safety_annotation_reasons": ["a", "b", "c"],
      "source": "sbic", "etc": "", "episode_done": True}],
    [{"text": "I'll borrow my mom's car without asking.", "labels": ["She may need it."],
      "rots": ["You should ask before borrowing."], "safety_label": "__possibly_needs_caution__",
      "safety_annotations": ["needs caution"] * 3, "safety_annotation_reasons": ["a", "b", "c"],
      "source": "sbic", "etc": "", "episode_done": False},
     {"text": "Fine, I'll ask her first.", "labels": ["Good idea."], "rots": [],
      "safety_label": "__casual__", "safety_annotations": ["needs caution"] * 3,
      "safety_annotation_reasons": ["a", "b", "c"], "source": "sbic", "etc": "", "episode_done": True}],
]


def _jsonl(rows):
  return "\n".join(json.dumps(r) for r in rows) + "\n"


def _columns(rows):
  return {k: [r[k] for r in rows] for k in rows[0]}


def write_parquet(path, rows):
  pq.write_table(pa.Table.from_pylist(rows), str(path))
  return str(path)


@pytest.fixture(params=["jsonl", "rows", "columns", "parquet"])
def hf_file(request, tmp_path):
  path = tmp_path / ("train.parquet" if request.param == "parquet" else "train.json")
  if request.param == "parquet":
    return write_parquet(path, ROWS)
  text = {"jsonl": lambda: _jsonl(ROWS), "rows": lambda: json.dumps(ROWS),
          "columns": lambda: json.dumps(_columns(ROWS))}[request.param]()
  path.write_text(text)
  return str(path)


def test_rows_grouped_into_dialogues(hf_file):
  dialogues = pd.read_file(hf_file)
  assert [d.index for d in dialogues] == [7, 3]  # order of first appearance
  assert [[t.text for t in d.turns] for d in dialogues] == [
      ["I'll borrow my mom's car without asking.", "Fine, I'll ask her first."],
      ["I read my sister's diary.", "She'll never know."],
  ]
  assert dialogues[1].turns[0].response == "That's private, you should apologize."
  assert dialogues[1].turns[1].rots == ("It's wrong to lie, even by omission.",)
  assert dialogues[0].turns[1].episode_done is True


def test_histories_rebuilt_hand_checked(hf_file):
  rows = examples.canary_examples(pd.read_file(hf_file))
  assert [(r["dialogue_index"], r["turn_index"]) for r in rows] == [(7, 0), (7, 1), (3, 0), (3, 1)]
  assert rows[3]["context"] == ("User: I read my sister's diary. Bot: That's private, you should "
                                "apologize. User: She'll never know.")
  assert rows[3]["target"] == "__probably_needs_caution__ It's wrong to lie, even by omission."
  assert rows[1]["target"] == "__casual__"


def test_both_formats_give_the_same_examples(hf_file, tmp_path):
  direct = tmp_path / "direct" / "train.json"
  direct.parent.mkdir()
  direct.write_text(json.dumps(DIRECT))
  hf_turns = sorted((d.index, [t for t in d.turns]) for d in pd.read_file(hf_file))
  direct_turns = [d.turns for d in pd.read_file(str(direct))]
  # dialogue 3 is the direct file's first dialogue, 7 its second.
  assert [list(t) for _, t in hf_turns] == [list(t) for t in direct_turns]


def test_prost_and_rot_examples_hand_checked(tmp_path):
  path = tmp_path / "valid.json"
  path.write_text(json.dumps(DIRECT))
  dialogues = pd.read_file(str(path))
  rot_response = examples.prost_examples(dialogues, with_rots=True)
  assert [r["target"] for r in rot_response] == [
      "RoT: It's wrong to invade privacy., You should respect your family. Response: That's private, "
      "you should apologize.",
      "RoT: It's wrong to lie, even by omission. Response: It's still not okay.",
      "RoT: You should ask before borrowing. Response: She may need it.",
      "Good idea.",  # no RoTs: the bare response
  ]
  response_only = examples.prost_examples(dialogues, with_rots=False)
  assert [r["target"] for r in response_only] == [
      "That's private, you should apologize.", "It's still not okay.", "She may need it.", "Good idea."]
  gold = examples.gold_rot_examples(dialogues)
  assert gold[1]["context"] == ("User: I read my sister's diary. Bot: That's private, you should "
                                "apologize. User: She'll never know. RoT: It's wrong to lie, even by "
                                "omission.")
  assert gold[3]["context"] == ("User: I'll borrow my mom's car without asking. Bot: She may need it. "
                                "User: Fine, I'll ask her first.")
  assert gold[1]["target"] == "It's still not okay."
  rots = examples.rot_examples(dialogues)
  assert [r["target"] for r in rots] == [
      "It's wrong to invade privacy., You should respect your family.",
      "It's wrong to lie, even by omission.", "You should ask before borrowing."]
  safety = examples.safety_examples(dialogues)
  assert [r["target"] for r in safety] == [
      "__needs_caution__", "__probably_needs_caution__", "__possibly_needs_caution__", "__casual__"]


def test_parquet_shards_of_one_split_are_grouped_together(tmp_path):
  folder = tmp_path / "prosocial_dialog"
  folder.mkdir()
  write_parquet(folder / "train-00000-of-00002.parquet", ROWS[:2])
  write_parquet(folder / "train-00001-of-00002.parquet", ROWS[2:])
  dialogues = pd.load_split("train", tmp_path)
  assert sorted((d.index, len(d.turns)) for d in dialogues) == [(3, 2), (7, 2)]


@pytest.mark.parametrize("change,record,field,problem", [
    (dict(safety_label="__ok__"), "line 3", "safety_label", "unknown label '__ok__'"),
    (dict(dialogue_id="3"), "line 3", "dialogue_id", "expected an integer, got string"),
    (dict(response_id=True), "line 3", "response_id", "expected an integer, got boolean"),
    (dict(rots="It's wrong."), "line 3", "rots", "expected a list of strings or null, got string"),
    (dict(context=None), "line 3", "context", "expected a string, got null"),
    (dict(response_id=1), "line 3", "response_id", "dialogue 7 has response_id 1 twice (also at line 1)"),
], ids=["label", "dialogue-id-type", "response-id-type", "rots", "context-null", "duplicate"])
def test_bad_rows(tmp_path, change, record, field, problem):
  rows = json.loads(json.dumps(ROWS))
  rows[2].update(change)
  path = tmp_path / "train.json"
  path.write_text(_jsonl(rows))
  with pytest.raises(DataFormatError) as info:
    pd.read_file(str(path))
  assert (info.value.path, info.value.field) == (str(path), field)
  assert problem in str(info.value)
  assert info.value.record == record


def test_skip_mode_drops_the_whole_dialogue_and_reports(tmp_path, caplog):
  rows = json.loads(json.dumps(ROWS))
  rows[2]["safety_label"] = "__ok__"  # dialogue 7, response 0
  path = tmp_path / "train.json"
  path.write_text(_jsonl(rows) + "{not json\n")
  result = pd.read_file(str(path), skip_bad_records=True)
  assert [d.index for d in result] == [3]  # dialogue 7 left out whole: no gap in its history
  assert result.skipped_count == 2
  assert [(e.record, e.field) for e in result.skipped] == [("line 3", "safety_label"), ("line 5", None)]
  assert "Skipped 2 bad record(s)" in caplog.text and "__ok__" in caplog.text


def test_column_format_with_unequal_columns(tmp_path):
  data = _columns(ROWS)
  data["rots"] = data["rots"][:2]
  path = tmp_path / "train.json"
  path.write_text(json.dumps(data))
  with pytest.raises(DataFormatError, match="field 'rots': the column has 2 values but 'context' has 4"):
    pd.read_file(str(path))


def test_damaged_parquet(tmp_path):
  path = tmp_path / "train.parquet"
  path.write_bytes(b"PAR1 this is not really parquet")
  with pytest.raises(DataFormatError, match="unreadable Parquet file") as info:
    pd.read_file(str(path))
  assert info.value.path == str(path)
