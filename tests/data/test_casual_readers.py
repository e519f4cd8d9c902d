"""The casual-corpus readers on hand-written files in each original release format,
and the Canary / Prost examples the tasks build from them, checked by hand."""

import json

from prosocial_jax.data.blended_skill_talk import CORPUS as blended_skill_talk
from prosocial_jax.data.daily_dialog import CORPUS as daily_dialog
from prosocial_jax.data.empathetic_dialogues import CORPUS as empathetic_dialogues
from prosocial_jax.data.persona_chat import CORPUS as persona_chat
from prosocial_jax.data.topical_chat import CORPUS as topical_chat
from prosocial_jax.data.wizard_of_wikipedia import CORPUS as wizard_of_wikipedia
from tasks import casual


def write(folder, name, text):
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / name
  path.write_text(text if isinstance(text, str) else json.dumps(text))
  return str(path)


def as_tuples(result):
  return [(c.utterances, c.responses) for c in result]


# ------------------------------------------------------------------ DailyDialog

DD_PARLAI = "\n".join(json.dumps(d) for d in [
    {"fold": "train", "topic": "ordinary_life", "dialogue": [
        {"emotion": "no_emotion", "act": "question", "text": "Are you free tonight ?"},
        {"emotion": "happiness", "act": "inform", "text": "Yes , why ?"},
        {"emotion": "no_emotion", "act": "directive", "text": "Let's see a movie ."}]},
    {"fold": "train", "topic": "work", "dialogue": [
        {"emotion": "no_emotion", "act": "inform", "text": "I got the job !"},
        {"emotion": "happiness", "act": "inform", "text": "Congratulations !"}]},
]) + "\n"
DD_OFFICIAL = ("Are you free tonight ? __eou__ Yes , why ? __eou__ Let's see a movie . __eou__\n"
               "I got the job ! __eou__ Congratulations ! __eou__\n")
DD_EXPECTED = [
    (("Are you free tonight ?", "Yes , why ?", "Let's see a movie ."), (1, 2)),
    (("I got the job !", "Congratulations !"), (1,)),
]


def test_daily_dialog_both_formats_agree(tmp_path):
  parlai = daily_dialog.read_file(write(tmp_path / "a", "train.json", DD_PARLAI))
  official = daily_dialog.read_file(write(tmp_path / "b", "dialogues_train.txt", DD_OFFICIAL))
  assert as_tuples(parlai) == as_tuples(official) == DD_EXPECTED
  assert parlai[0].id == "0:ordinary_life" and official[1].id == "1"


def test_daily_dialog_split_files_skip_act_and_emotion_files(tmp_path):
  folder = tmp_path / "daily_dialog"
  write(folder, "dialogues_train.txt", DD_OFFICIAL)
  write(folder, "dialogues_act_train.txt", "2 1 3\n1 1\n")
  write(folder, "dialogues_emotion_train.txt", "0 4 0\n0 4\n")
  assert as_tuples(daily_dialog.load_split("train", tmp_path)) == DD_EXPECTED


def test_casual_examples_hand_checked(tmp_path):
  conversations = daily_dialog.read_file(write(tmp_path, "train.json", DD_PARLAI))
  canary = casual.canary_examples(conversations)
  assert [(e["context"], e["target"]) for e in canary] == [
      ("User: Are you free tonight ?", "__casual__"),
      ("Bot: Are you free tonight ? User: Yes , why ?", "__casual__"),
      ("User: Are you free tonight ? Bot: Yes , why ? User: Let's see a movie .", "__casual__"),
      ("User: I got the job !", "__casual__"),
      ("Bot: I got the job ! User: Congratulations !", "__casual__"),
  ]
  prost = casual.prost_examples(conversations)
  assert [(e["context"], e["target"]) for e in prost] == [
      ("User: Are you free tonight ?", "Yes , why ?"),
      ("Bot: Are you free tonight ? User: Yes , why ?", "Let's see a movie ."),
      ("User: I got the job !", "Congratulations !"),
  ]


# ------------------------------------------------------------------ EmpatheticDialogues

ED_CSV = """conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags
hit:0_conv:1,1,sentimental,I remember the fireworks_comma_ with my friend.,1,I remember going to see the fireworks with my best friend.,5|5|5_2|2|5,
hit:0_conv:1,2,sentimental,I remember the fireworks_comma_ with my friend.,0,Was this a friend you were in love with_comma_ or just a best friend?,5|5|5_2|2|5,
hit:0_conv:1,3,sentimental,I remember the fireworks_comma_ with my friend.,1,This was a best friend. I miss her.,5|5|5_2|2|5,
hit:1_conv:2,1,afraid,It feels like hitting to blank wall,3,it feels like hitting to blank wall when i see the darkness,,,cand one|cand two
hit:1_conv:2,2,afraid,It feels like hitting to blank wall,4,Oh ya? I don't really see how,,
"""


def test_empathetic_dialogues_csv(tmp_path):
  result = empathetic_dialogues.read_file(write(tmp_path, "train.csv", ED_CSV))
  assert as_tuples(result) == [
      (("I remember going to see the fireworks with my best friend.",
        "Was this a friend you were in love with, or just a best friend?",
        "This was a best friend. I miss her."), (1,)),
      (("it feels like hitting to blank wall when i see the darkness",
        "Oh ya? I don't really see how"), (1,)),
  ]
  assert [c.id for c in result] == ["hit:0_conv:1", "hit:1_conv:2"]


# ------------------------------------------------------------------ BlendedSkillTalk

BST = [{
    "personas": [["i like dogs.", "i am a nurse."], ["i love tea.", "i live in paris."]],
    "context_dataset": "empathetic_dialogues", "additional_context": "",
    "free_turker_utterance": "I just got a puppy!", "guided_turker_utterance": "How exciting!",
    "dialog": [[0, "She chews everything though."], [1, "Puppies do that, it passes."],
               [0, "I hope so, my shoes are gone."]],
}, {
    "personas": [["a.", "b."], ["c.", "d."]], "context_dataset": "convai2",
    "free_turker_utterance": "", "guided_turker_utterance": "",
    "dialog": [[0, "Hi there."], [1, "Hello!"]],
}]


def test_blended_skill_talk_seeds_come_first(tmp_path):
  result = blended_skill_talk.read_file(write(tmp_path, "valid.json", BST))
  assert as_tuples(result) == [
      (("I just got a puppy!", "How exciting!", "She chews everything though.",
        "Puppies do that, it passes.", "I hope so, my shoes are gone."), (3,)),
      (("Hi there.", "Hello!"), (1,)),
  ]


# ------------------------------------------------------------------ Topical-Chat

def _topical(conversations):
  return {cid: {"article_url": "", "config": "A", "conversation_rating": {}, "content": [
      {"message": m, "agent": f"agent_{k % 2 + 1}", "sentiment": "Neutral",
       "knowledge_source": ["FS1"], "turn_rating": "Good"} for k, m in enumerate(msgs)]}
      for cid, msgs in conversations.items()}


def test_topical_chat_reads_both_files_of_a_split(tmp_path):
  folder = tmp_path / "topical_chat"
  write(folder, "valid_freq.json", _topical({"t_1": ["Do you like football?", "Yes!", "Me too."]}))
  write(folder, "valid_rare.json", _topical({"t_2": ["Ever been to Mars?", "Not yet."]}))
  write(folder, "train.json", _topical({"t_0": ["a", "b"]}))
  result = topical_chat.load_split("validation", tmp_path)
  assert as_tuples(result) == [
      (("Do you like football?", "Yes!", "Me too."), (1,)),
      (("Ever been to Mars?", "Not yet."), (1,)),
  ]
  assert [c.id for c in result] == ["t_1", "t_2"]
  assert len(result.paths) == 2


# ------------------------------------------------------------------ PersonaChat

PERSONA_TXT = """1 your persona: i like to remodel homes.
2 your persona: i like to go hunting.
3 hi , how are you doing ?\tyou must be very fast . hunting is one of my favorite hobbies .\t\tcand a|cand b
4 i am ! for my hobby i like to do canning .\tcanning ? i never heard of that .\t\tcand c|cand d
1 your persona: i read twenty books a year.
2 __SILENCE__\thello , who are you ?\t\tx|y
3 i am a nurse .\tthat sounds hard .\t\tx|y
"""


def test_persona_chat_dialogues_and_silence(tmp_path):
  folder = tmp_path / "persona_chat"
  write(folder, "train_self_original.txt", PERSONA_TXT)
  write(folder, "train_both_original.txt", "1 nope\tnope\n")  # another variant: not read
  result = persona_chat.load_split("train", tmp_path)
  assert as_tuples(result) == [
      (("hi , how are you doing ?", "you must be very fast . hunting is one of my favorite hobbies .",
        "i am ! for my hobby i like to do canning .", "canning ? i never heard of that ."), (1, 3)),
      # The bot opens (after __SILENCE__): its opening line is history, not a response.
      (("hello , who are you ?", "i am a nurse .", "that sounds hard ."), (2,)),
  ]


# ------------------------------------------------------------------ Wizard of Wikipedia

def _wow(dialogs):
  return [{"chosen_topic": "Dogs", "persona": "i like dogs.", "wizard_eval": 5,
           "chosen_topic_passage": ["Dogs are mammals."],
           "dialog": [{"speaker": s, "text": t, "retrieved_passages": [], "retrieved_topics": []}
                      for s, t in d]} for d in dialogs]


def test_wizard_of_wikipedia_wizard_turns_and_split_files(tmp_path):
  folder = tmp_path / "wizard_of_wikipedia"
  write(folder, "valid_random_split.json", _wow([
      [("0_Wizard", "Dogs are great pets."), ("1_Apprentice", "I agree!"), ("0_Wizard", "They are loyal.")],
      [("1_Apprentice", "Tell me about cats."), ("0_Wizard", "Cats purr.")],
  ]))
  write(folder, "valid_topic_split.json", _wow([[("0_Wizard", "unseen"), ("1_Apprentice", "x")]]))
  write(folder, "data.json", [])
  result = wizard_of_wikipedia.load_split("validation", tmp_path)
  assert as_tuples(result) == [
      (("Dogs are great pets.", "I agree!", "They are loyal."), (2,)),
      (("Tell me about cats.", "Cats purr."), (1,)),
  ]
  assert result[0].id == "0:Dogs"
