"""Every reader, on a malformed file, names the file, the record and the field — or, when
asked to skip bad records, keeps the good ones, counts the bad ones and logs them.

Each case is a file holding one good record followed by one bad record.
"""

import json

import pytest

from prosocial_jax.data import (CORPORA, blended_skill_talk, commonsense_norm_bank, daily_dialog,
                                empathetic_dialogues, moral_integrity_corpus, persona_chat,
                                prosocial_dialog, social_chem_101, topical_chat, toxichat,
                                wizard_of_wikipedia)
from prosocial_jax.data.errors import DataFormatError

DD_GOOD = json.dumps({"dialogue": [{"text": "Hi ."}, {"text": "Hello ."}]})
ED_HEADER = "conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags\n"
ED_GOOD = "hit:0_conv:1,1,sad,prompt,1,I lost my keys.,,\nhit:0_conv:1,2,sad,prompt,0,Oh no!,,\n"
BST_GOOD = {"dialog": [[0, "Hi."], [1, "Hello."]]}
TC_GOOD = {"content": [{"message": "Hi.", "agent": "agent_1"}, {"message": "Hello.", "agent": "agent_2"}]}
PC_GOOD = "1 your persona: i like cats.\n2 hi .\thello .\t\ta|b\n"
WOW_GOOD = {"dialog": [{"speaker": "1_Apprentice", "text": "Hi."}, {"speaker": "0_Wizard", "text": "Hello."}]}
SC_HEADER = "area\tm\tsplit\trot-agree\trot-bad\tsituation\trot\trot-id\n"
SC_GOOD = "aita\t1\ttrain\t4\t0\tlying to a friend\tIt's wrong to lie.\tr/1\n"
MIC_HEADER = "Q,A,rot,split\n"
MIC_GOOD = "Is lying okay?,No.,It's wrong to lie.,train\n"
NB_HEADER = "input_sequence\ttext_label\n"
NB_GOOD = "lying to a friend\tit's wrong\n"
TOXI_GOOD = json.dumps({"reddit_thread": [{"turn_id": 1, "text": "Hi", "offense_label": "Safe"}]})
PD_GOOD = json.dumps({"context": "Hi", "response": "Hello", "rots": [], "safety_label": "__casual__",
                      "dialogue_id": 0, "response_id": 0, "episode_done": True})


def pd_row(**change):
  row = json.loads(PD_GOOD)
  row.update(dialogue_id=1, **change)
  return json.dumps(row)


def lines(*parts):
  return "\n".join(parts) + "\n"


# (id, corpus module, file name, content, record, field, problem)
CASES = [
    # ProsocialDialog, Hugging Face JSON lines (the direct format: test_prosocial_dialog_reader.py)
    ("pd-bad-json", prosocial_dialog, "train.json", lines(PD_GOOD, '{"context": "x",'), "line 2", None, "invalid JSON"),
    ("pd-label", prosocial_dialog, "train.json", lines(PD_GOOD, pd_row(safety_label="__ok__")), "line 2",
     "safety_label", "unknown label '__ok__'"),
    ("pd-missing", prosocial_dialog, "train.json", lines(PD_GOOD, pd_row(response=None)), "line 2",
     "response", "expected a string, got null"),
    # DailyDialog
    ("dd-bad-json", daily_dialog, "train.json", lines(DD_GOOD, '{"dialogue": ['), "line 2", None, "invalid JSON"),
    ("dd-missing", daily_dialog, "train.json", lines(DD_GOOD, '{"topic": "x"}'), "line 2", "dialogue", "missing"),
    ("dd-empty", daily_dialog, "train.json", lines(DD_GOOD, '{"dialogue": []}'), "line 2", "dialogue", "empty list"),
    ("dd-type", daily_dialog, "train.json", lines(DD_GOOD, '{"dialogue": [{"text": 3}]}'),
     "line 2, utterance 0", "text", "expected a string, got number"),
    ("dd-official-empty", daily_dialog, "dialogues_train.txt",
     lines("Hi . __eou__ Hello . __eou__", "Hi . __eou__ __eou__ x __eou__"), "line 2", None, "utterance 1 is empty"),
    # EmpatheticDialogues
    ("ed-fields", empathetic_dialogues, "train.csv", ED_HEADER + ED_GOOD + "hit:1_conv:2,1,sad,p,1,raw, comma, twice,,\n",
     "line 4", None, "expected 8 or 9 comma-separated fields, got 10"),
    ("ed-index", empathetic_dialogues, "train.csv", ED_HEADER + ED_GOOD + "hit:1_conv:2,one,sad,p,1,Hi.,,\n",
     "line 4", "utterance_idx", "expected a number, got 'one'"),
    ("ed-empty", empathetic_dialogues, "train.csv", ED_HEADER + ED_GOOD + "hit:1_conv:2,1,sad,p,1, ,,\n",
     "line 4", "utterance", "empty"),
    # BlendedSkillTalk
    ("bst-missing", blended_skill_talk, "train.json", json.dumps([BST_GOOD, {"personas": []}]),
     "episode 1", "dialog", "missing"),
    ("bst-empty", blended_skill_talk, "train.json", json.dumps([BST_GOOD, {"dialog": []}]),
     "episode 1", "dialog", "empty list"),
    ("bst-type", blended_skill_talk, "train.json", json.dumps([BST_GOOD, {"dialog": [[0, 7]]}]),
     "episode 1", "dialog", "turn 0: expected non-empty text, got 7"),
    # Topical-Chat
    ("tc-missing", topical_chat, "train.json", json.dumps({"a": TC_GOOD, "b": {"config": "A"}}),
     "conversation b", "content", "missing"),
    ("tc-type", topical_chat, "train.json", json.dumps({"a": TC_GOOD, "b": {"content": [{"message": ["x"]}]}}),
     "conversation b, message 0", "message", "expected a string, got array"),
    ("tc-empty", topical_chat, "train.json", json.dumps({"a": TC_GOOD, "b": {"content": []}}),
     "conversation b", "content", "empty list"),
    # PersonaChat
    ("pc-number", persona_chat, "train_self_original.txt", PC_GOOD + "1 hi .\thello .\nhow are you ?\tfine .\n",
     "line 4", None, "must start with its number"),
    ("pc-no-reply", persona_chat, "train_self_original.txt", PC_GOOD + "1 hi . and no reply\n",
     "line 3", None, "expected '<partner utterance><TAB><bot reply>...'"),
    ("pc-empty-dialogue", persona_chat, "train_self_original.txt", PC_GOOD + "1 your persona: i am empty.\n",
     "dialogue starting at line 3", None, "no utterances"),
    # Wizard of Wikipedia
    ("wow-missing", wizard_of_wikipedia, "train.json", json.dumps([WOW_GOOD, {"dialog": [{"text": "x"}]}]),
     "dialogue 1, turn 0", "speaker", "missing"),
    ("wow-type", wizard_of_wikipedia, "train.json",
     json.dumps([WOW_GOOD, {"dialog": [{"speaker": "0_Wizard", "text": None}]}]),
     "dialogue 1, turn 0", "text", "expected a string, got null"),
    ("wow-empty", wizard_of_wikipedia, "train.json", json.dumps([WOW_GOOD, {"dialog": []}]),
     "dialogue 1", "dialog", "empty list"),
    # Social Chemistry 101
    ("sc-fields", social_chem_101, "social-chem-101.v1.0.tsv", SC_HEADER + SC_GOOD + "aita\t1\ttrain\t4\n",
     "line 3", None, "expected 8 fields (as in the header), got 4"),
    ("sc-split", social_chem_101, "social-chem-101.v1.0.tsv", SC_HEADER + SC_GOOD + SC_GOOD.replace("train", "trian"),
     "line 3", "split", "unknown split 'trian'"),
    ("sc-rot-bad", social_chem_101, "social-chem-101.v1.0.tsv", SC_HEADER + SC_GOOD + SC_GOOD.replace("\t0\t", "\tyes\t"),
     "line 3", "rot-bad", "expected 0 or 1, got 'yes'"),
    ("sc-empty", social_chem_101, "social-chem-101.v1.0.tsv",
     SC_HEADER + SC_GOOD + SC_GOOD.replace("lying to a friend", " "), "line 3", "situation", "empty"),
    # Moral Integrity Corpus
    ("mic-split", moral_integrity_corpus, "MIC.csv", MIC_HEADER + MIC_GOOD + MIC_GOOD.replace("train", "eval"),
     "line 3", "split", "unknown split 'eval'"),
    ("mic-empty", moral_integrity_corpus, "MIC.csv", MIC_HEADER + MIC_GOOD + ",No.,It's wrong.,train\n",
     "line 3", "Q", "empty"),
    # Commonsense Norm Bank
    ("nb-empty", commonsense_norm_bank, "train.freeform.tsv", NB_HEADER + NB_GOOD + "helping\t \n",
     "line 3", "text_label", "empty"),
    ("nb-no-tab", commonsense_norm_bank, "train.freeform.tsv", NB_GOOD + "no judgment here\n",
     "line 2", None, "expected '<situation><TAB><judgment>'"),
    # ToxiChat
    ("toxi-bad-json", toxichat, "train.jsonl", lines(TOXI_GOOD, '{"reddit_thread": ['), "line 2", None, "invalid JSON"),
    ("toxi-label", toxichat, "train.jsonl",
     lines(TOXI_GOOD, TOXI_GOOD.replace('"Safe"', '"Toxic"')), "line 2, turn 0", "offense_label",
     "unknown value 'Toxic'; expected one of ['Safe', 'Offensive']"),
    ("toxi-missing", toxichat, "train.jsonl", lines(TOXI_GOOD, '{"final_dgpt_response": {}}'),
     "line 2", "reddit_thread", "missing"),
    ("toxi-empty", toxichat, "train.jsonl", lines(TOXI_GOOD, '{"reddit_thread": []}'),
     "line 2", "reddit_thread", "empty list"),
    ("toxi-type", toxichat, "train.jsonl", lines(TOXI_GOOD, json.dumps(
        {"reddit_thread": [{"text": "x", "offense_label": "Safe"}], "final_gpt3_response": "hi"})),
     "line 2", "final_gpt3_response", "expected a JSON object, got string"),
]


@pytest.mark.parametrize("module,name,content,record,field,problem",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_names_file_record_and_field(tmp_path, module, name, content, record, field, problem):
  path = tmp_path / name
  path.write_text(content)
  with pytest.raises(DataFormatError) as info:
    module.CORPUS.read_file(str(path))
  error = info.value
  assert (error.path, error.record, error.field) == (str(path), record, field)
  assert problem in str(error)
  assert str(error).startswith(f"{path}: {record}: ")


@pytest.mark.parametrize("module,name,content,record,field,problem",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_skip_mode_counts_and_reports(tmp_path, caplog, module, name, content, record, field, problem):
  path = tmp_path / name
  path.write_text(content)
  result = module.CORPUS.read_file(str(path), skip_bad_records=True)
  assert len(result) == 1  # the good record
  assert result.skipped_count == 1
  assert result.skipped[0].record == record and problem in str(result.skipped[0])
  assert f"Skipped 1 bad record(s) while reading {path}" in caplog.text


@pytest.mark.parametrize("module,name,content,problem", [
    (empathetic_dialogues, "train.csv", "id,text\n1,hi\n", "expected the header conv_id,utterance_idx"),
    (social_chem_101, "social-chem-101.v1.0.tsv", "situation\tsplit\nx\ttrain\n", "the header has no column(s) ['rot', 'rot-bad']"),
    (moral_integrity_corpus, "MIC.csv", "", "the file is empty"),
    (topical_chat, "train.json", "[]", "must be a JSON object of conversations"),
    (blended_skill_talk, "train.json", "{}", "must be a JSON list of episodes"),
    (wizard_of_wikipedia, "train.json", '[{"dialog": [], ]', "invalid JSON"),
    (daily_dialog, "train.json", b"\xff\xfe{}", "not UTF-8 text"),
], ids=["ed-header", "sc-header", "mic-empty-file", "tc-top", "bst-top", "wow-json", "dd-utf8"])
def test_whole_file_problems_raise_even_in_skip_mode(tmp_path, module, name, content, problem):
  path = tmp_path / name
  path.write_bytes(content if isinstance(content, bytes) else content.encode())
  with pytest.raises(DataFormatError) as info:
    module.CORPUS.read_file(str(path), skip_bad_records=True)
  assert info.value.path == str(path) and problem in str(info.value)


def test_every_corpus_has_bad_record_cases():
  assert {case[1].CORPUS.name for case in CASES} == set(CORPORA)
