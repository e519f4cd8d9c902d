"""The direct-download reader, Canary examples and the output parser, on hand-written files."""

import json

import pytest

from prosocial_jax.data import formatting
from prosocial_jax.data.errors import DataFormatError
from prosocial_jax.data.labels import SAFETY_LABELS
from prosocial_jax.data.prosocial_dialog import CORPUS
from tasks.prosocial_dialog import canary_examples


def turn(text, label, response="ok.", rots=(), **extra):
  t = {"text": text, "labels": [response], "rots": list(rots) if rots is not None else None,
       "safety_label": label, "safety_annotations": ["casual"] * 3,
       "safety_annotation_reasons": ["a", "b", "c"], "source": "sbic", "etc": "",
       "episode_done": False}
  t.update(extra)
  return t


FIXTURE = [
    [turn("I took my brother's bike without asking.", "__needs_caution__",
          "You should ask him first.", ["It's wrong to take things without asking.", "You should respect your family's property."]),
     turn("Okay, I'll give it back.", "__casual__", "Good call.", None, etc=None, episode_done=True)],
    [turn("I want to hurt him.", "__needs_intervention__", "Please don't.", ["It's wrong to hurt people."]),
     turn("Fine, I'll just yell at him.", "__possibly_needs_caution__", "Try to stay calm.", []),
     turn("He deserves it though.", "__probably_needs_caution__", "Talk it out instead.",
          ["It's wrong to yell at people, even when angry.", "You should talk calmly.", "People deserve respect."],
          episode_done=True)],
    [turn("I baked a cake today!", "__casual__", "Nice!", ["You should share cake."], episode_done=True)],
]


def write(tmp_path, data, name="train.json"):
  path = tmp_path / name
  path.write_text(data if isinstance(data, str) else json.dumps(data, indent=1))
  return str(path)


def test_reads_dialogues_and_turns(tmp_path):
  dialogues = CORPUS.read_file(write(tmp_path, FIXTURE))
  assert [len(d.turns) for d in dialogues] == [2, 3, 1]
  assert [d.index for d in dialogues] == [0, 1, 2]
  first = dialogues[0].turns[0]
  assert first.text == "I took my brother's bike without asking."
  assert first.response == "You should ask him first."
  assert first.rots == ("It's wrong to take things without asking.", "You should respect your family's property.")
  assert first.safety_annotations == ("casual",) * 3
  assert first.source == "sbic" and first.etc == "" and first.episode_done is False
  second = dialogues[0].turns[1]
  assert second.rots == () and second.etc is None and second.episode_done is True


def test_canary_examples_hand_checked(tmp_path):
  examples = canary_examples(CORPUS.read_file(write(tmp_path, FIXTURE)))
  assert len(examples) == 6
  assert [(e["dialogue_index"], e["turn_index"]) for e in examples] == [
      (0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0)]
  assert examples[0]["context"] == "User: I took my brother's bike without asking."
  assert examples[1]["context"] == ("User: I took my brother's bike without asking. "
                                    "Bot: You should ask him first. User: Okay, I'll give it back.")
  assert examples[4]["context"] == ("User: I want to hurt him. Bot: Please don't. "
                                    "User: Fine, I'll just yell at him. Bot: Try to stay calm. "
                                    "User: He deserves it though.")
  assert [e["target"] for e in examples] == [
      "__needs_caution__ It's wrong to take things without asking., You should respect your family's property.",
      "__casual__",  # rots null
      "__needs_intervention__ It's wrong to hurt people.",
      "__possibly_needs_caution__",  # no RoTs -> the token alone
      "__probably_needs_caution__ It's wrong to yell at people, even when angry., You should talk calmly., "
      "People deserve respect.",
      "__casual__",  # casual with RoTs -> still the token alone
  ]
  assert examples[5]["rots"] == ["You should share cake."]
  assert examples[2]["safety_label"] == "__needs_intervention__"


def test_parse_canary_output():
  # prosocial_jax.evaluation.metrics imports the parser from the corpus module.
  assert formatting.parse_canary_output("__casual__") == ("__casual__", [])
  assert formatting.parse_canary_output(" __needs_caution__ It's rude., You should be kind. ") == (
      "__needs_caution__", ["It's rude.", "You should be kind."])
  # A comma inside one RoT (followed by lower case) does not split it.
  assert formatting.parse_canary_output("__needs_caution__ It's bad to yell, even when angry.") == (
      "__needs_caution__", ["It's bad to yell, even when angry."])
  assert formatting.parse_canary_output("__needs_intervention__It's wrong.") == (
      "__needs_intervention__", ["It's wrong."])
  assert formatting.parse_canary_output("It's wrong.") == (None, ["It's wrong."])
  assert formatting.parse_canary_output("") == (None, [])
  for label in SAFETY_LABELS:
    assert formatting.parse_canary_output(formatting.canary_target(label, ["A.", "B."]))[0] == label


_DELETE = object()


def _bad(**changes):
  """FIXTURE with dialogue 1, turn 2 changed (`_DELETE` removes a field)."""
  data = json.loads(json.dumps(FIXTURE))
  t = data[1][2]
  for key, value in changes.items():
    if value is _DELETE:
      del t[key]
    else:
      t[key] = value
  return data

BAD_TURNS = [
    ("text", dict(text=_DELETE), "missing"),
    ("safety_label", dict(safety_label=_DELETE), "missing"),
    ("text", dict(text=3), "expected a string, got number"),
    ("text", dict(text=None), "expected a string, got null"),
    ("safety_label", dict(safety_label="__ok__"), "unknown label '__ok__'"),
    ("labels", dict(labels="Talk it out."), "expected a list of strings or null, got string"),
    ("rots", dict(rots="It's wrong."), "expected a list of strings or null, got string"),
    ("rots", dict(rots=["fine", 7]), "item 1: expected a string, got number"),
    ("safety_annotations", dict(safety_annotations={"a": 1}), "got object"),
    ("source", dict(source=["sbic"]), "expected a string, got array"),
    ("episode_done", dict(episode_done="yes"), "expected true/false, got string"),
]


@pytest.mark.parametrize("field,changes,problem", BAD_TURNS, ids=[f"{f}-{p[:20]}" for f, _, p in BAD_TURNS])
def test_bad_turn_names_file_record_and_field(tmp_path, field, changes, problem):
  path = write(tmp_path, _bad(**changes))
  with pytest.raises(DataFormatError) as info:
    CORPUS.read_file(path)
  message = str(info.value)
  assert path in message
  assert "dialogue 1, turn 2" in message
  assert f"field {field!r}" in message
  assert problem in message
  assert (info.value.path, info.value.record, info.value.field) == (path, "dialogue 1, turn 2", field)


@pytest.mark.parametrize("data,fragments", [
    ({"dialogues": []}, ["must hold the Hugging Face columns", "direct-download format is a JSON list"]),
    ({"context": ["hi"], "response": ["hello"]}, ["field 'safety_label'", "Hugging Face columns"]),
    (3, ["must be a JSON list of dialogues (direct download)", "got number"]),
    ([FIXTURE[0], {"text": "hi"}], ["dialogue 1", "must be a list of turns, got object"]),
    ([FIXTURE[0], []], ["dialogue 1", "has no turns"]),
    ([FIXTURE[0], ["just text"]], ["dialogue 1, turn 0", "must be a JSON object, got string"]),
], ids=["dict", "hf-columns", "number", "dialogue-not-list", "empty-dialogue", "turn-not-object"])
def test_bad_structure(tmp_path, data, fragments):
  path = write(tmp_path, data)
  with pytest.raises(DataFormatError) as info:
    CORPUS.read_file(path)
  assert path in str(info.value)
  for fragment in fragments:
    assert fragment in str(info.value)


def test_invalid_json_gives_line_and_column(tmp_path):
  path = write(tmp_path, '[\n [\n  {"text": "hi",, "safety_label": "__casual__"}\n ]\n]\n')
  with pytest.raises(DataFormatError, match=r"line 3 column 17: invalid JSON") as info:
    CORPUS.read_file(path)
  assert path in str(info.value)


def test_json_lines_are_read_as_hugging_face_rows(tmp_path):
  path = write(tmp_path, '{"context": "a"}\n{"context": "b"}\n')
  with pytest.raises(DataFormatError, match="line 1: field 'response': missing"):
    CORPUS.read_file(path)


def test_missing_file(tmp_path):
  path = str(tmp_path / "nope" / "train.json")
  with pytest.raises(DataFormatError, match="file not found") as info:
    CORPUS.read_file(path)
  assert path in str(info.value)


def test_load_split_uses_the_data_root(tmp_path):
  (tmp_path / "prosocial_dialog").mkdir()
  write(tmp_path / "prosocial_dialog", FIXTURE, "valid.json")
  dialogues = CORPUS.load_split("validation", tmp_path)
  assert len(dialogues) == 3


def test_skip_mode_leaves_out_the_dialogue_and_reports(tmp_path, caplog):
  data = _bad(safety_label="__ok__")
  data.append([])  # an empty dialogue
  path = write(tmp_path, data)
  result = CORPUS.read_file(path, skip_bad_records=True)
  assert [d.index for d in result] == [0, 2]  # dialogue 1 (bad turn) and 3 (empty) left out whole
  assert [(e.record, e.field) for e in result.skipped] == [("dialogue 1, turn 2", "safety_label"),
                                                            ("dialogue 3", None)]
  assert "Skipped 2 bad record(s)" in caplog.text
