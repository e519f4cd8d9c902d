"""Stage-1 social-norm readers (Social Chemistry 101, MIC, Norm Bank) and ToxiChat, on
hand-written files in their release formats, with the examples the tasks build from them."""

import json

from prosocial_jax.data.commonsense_norm_bank import CORPUS as norm_bank
from prosocial_jax.data.moral_integrity_corpus import CORPUS as moral_integrity
from prosocial_jax.data.social_chem_101 import CORPUS as social_chem
from prosocial_jax.data.toxichat import CORPUS as toxichat
from tasks.social_norms import norm_examples
from tasks.toxichat import safety_examples


def write(folder, name, text):
  folder.mkdir(parents=True, exist_ok=True)
  (folder / name).write_text(text)
  return str(folder / name)


# pandas writes the release's TSV: quoted fields may hold tabs, quotes and newlines.
SOCIAL_CHEM = (
    "area\tm\tsplit\trot-agree\trot-bad\tsituation\trot\trot-id\n"
    "amitheasshole\t1\ttrain\t4\t0\tnot wanting to go to my sister's wedding\t"
    "It's expected that you attend a sibling's wedding.\trot/1\n"
    "amitheasshole\t1\ttrain\t3\t0\tnot wanting to go to my sister's wedding\t"
    "\"You should support your family, \"\"even\"\" when\tit's hard.\"\trot/2\n"
    "confessions\t1\ttrain\t2\t1\ttaking a pen\tconfusing rot\trot/3\n"
    "dearabby\t1\tdev\t4\t0\tlying to my boss\tIt's wrong to lie to your employer.\trot/4\n"
    "dearabby\t5\tdev-extra\t4\t0\tlying to my boss\tIt's wrong to lie to your employer.\trot/4\n"
    "rocstories\t1\ttest\t4\t0\tBob gave his seat to an old man.\tIt's good to be polite.\trot/5\n"
)


def test_social_chem_split_column_and_rot_bad(tmp_path):
  write(tmp_path / "social_chem_101", "social-chem-101.v1.0.tsv", SOCIAL_CHEM)
  train = social_chem.load_split("train", tmp_path)
  assert [(e.situation, e.target, e.id) for e in train] == [
      ("not wanting to go to my sister's wedding", "It's expected that you attend a sibling's wedding.", "rot/1"),
      ("not wanting to go to my sister's wedding", "You should support your family, \"even\" when\tit's hard.", "rot/2"),
  ]  # rot/3 is rot-bad
  assert [e.id for e in social_chem.load_split("validation", tmp_path)] == ["rot/4"]  # not dev-extra
  assert [e.id for e in social_chem.load_split("test", tmp_path)] == ["rot/5"]
  examples = norm_examples(train)
  assert examples[1] == {"context": "User: not wanting to go to my sister's wedding",
                         "target": "You should support your family, \"even\" when it's hard.", "id": "rot/2"}


MIC = ('Q,A,rot,moral,split,id\n'
       'Is it okay to cheat on a test?,"Sure, everyone does it.",It is wrong to cheat.,fairness,train,1\n'
       'What do you think of your neighbors?,They are loud.,You should be kind to neighbors.,care,dev,2\n'
       'Should I lie?,No.,"It\'s good to be honest, mostly.",care,test,3\n')


def test_moral_integrity_corpus(tmp_path):
  write(tmp_path / "moral_integrity_corpus", "MIC.csv", MIC)
  train = moral_integrity.load_split("train", tmp_path)
  assert [(e.question, e.answer, e.target) for e in train] == [
      ("Is it okay to cheat on a test?", "Sure, everyone does it.", "It is wrong to cheat.")]
  assert norm_examples(train)[0]["context"] == "Bot: Is it okay to cheat on a test? User: Sure, everyone does it."
  assert [e.target for e in moral_integrity.load_split("test", tmp_path)] == ["It's good to be honest, mostly."]


def test_norm_bank_header_and_headerless_files(tmp_path):
  folder = tmp_path / "commonsense_norm_bank"
  write(folder, "train.freeform.tsv", "input_sequence\tclass_label\ttext_label\tinput_type\tformat\tsource\n"
        "ignoring a phone call from your mother\t-1\tit's rude\tnegative_rot\tfreeform\tsocialchem\n")
  write(folder, "train.yesno.tsv", "women cannot be scientists\tno, women can\n")
  write(folder, "validation.freeform.tsv", "input_sequence\ttext_label\nhelping a friend move\tit's good\n")
  train = norm_bank.load_split("train", tmp_path)
  assert [(e.situation, e.target) for e in train] == [
      ("ignoring a phone call from your mother", "it's rude"),
      ("women cannot be scientists", "no, women can")]
  assert [e.target for e in norm_bank.load_split("validation", tmp_path)] == ["it's good"]
  assert norm_examples(train)[0] == {"context": "User: ignoring a phone call from your mother",
                                     "target": "it's rude", "id": "line 2"}


def _turn(i, text, label, **extra):
  return {"turn_id": i, "text": text, "offense_label": label, "offense_targets": [], **extra}


TOXICHAT = "\n".join(json.dumps(t) for t in [
    {"reddit_thread": [_turn(1, " Title: Help \n Please explain. ", "Safe"),
                       _turn(2, " They are all stupid ", "Offensive", stance_label_towards_turn_1="Neutral")],
     "final_dgpt_response": _turn(3, "I agree.", "Offensive", coherence="Plausible", chatbot_model="dgpt"),
     "final_gpt3_response": _turn(3, "", "Safe", coherence="Plausible", chatbot_model="gpt3")},
    {"reddit_thread": [_turn(1, "Nice day.", "Safe")]},
]) + "\n"


def test_toxichat_threads_and_examples(tmp_path):
  write(tmp_path / "toxichat", "dev.jsonl", TOXICHAT)
  threads = toxichat.load_split("validation", tmp_path)
  assert [len(t.turns) for t in threads] == [2, 1]
  assert sorted(threads[0].replies) == ["dgpt", "gpt3"] and threads[1].replies == {}
  examples = safety_examples(threads)
  assert [(e["context"], e["target"], e["speaker"]) for e in examples] == [
      ("User: Title: Help Please explain.", "__casual__", "reddit"),
      ("Bot: Title: Help Please explain. User: They are all stupid", "__needs_caution__", "reddit"),
      ("User: Title: Help Please explain. Bot: They are all stupid User: I agree.", "__needs_caution__", "dgpt"),
      ("User: Title: Help Please explain. Bot: They are all stupid User:", "__casual__", "gpt3"),
      ("User: Nice day.", "__casual__", "reddit"),
  ]
