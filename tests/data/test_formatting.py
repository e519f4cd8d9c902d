"""The context and target formats, and the parsers that read model outputs back."""

import pytest

from prosocial_jax.data import formatting as f
from prosocial_jax.data.labels import SAFETY_LABELS


def test_history_marks_and_whitespace():
  assert f.format_history(["a"]) == "User: a"
  assert f.format_history(["a", "b"]) == "Bot: a User: b"
  assert f.format_history([" a ", "b\n\nc", "d\te"]) == "User: a Bot: b c User: d e"
  assert f.format_history(["a", ""]) == "Bot: a User:"


def test_targets():
  assert f.canary_target("__casual__", ["You should share."]) == "__casual__"
  assert f.canary_target("__needs_caution__", []) == "__needs_caution__"
  assert f.canary_target("__needs_caution__", [" It's rude. ", "", "You should  stop."]) == \
      "__needs_caution__ It's rude., You should stop."
  assert f.prost_target(" Please stop. ", ["It's rude."]) == "RoT: It's rude. Response: Please stop."
  assert f.prost_target("Nice!", None) == "Nice!"
  assert f.gold_rot_context("User: hi", ["It's rude.", "Be kind."]) == "User: hi RoT: It's rude., Be kind."
  assert f.gold_rot_context("User: hi", []) == "User: hi"


@pytest.mark.parametrize("text,expected", [
    ("RoT: It's rude., You should stop. Response: Please don't do that.",
     (["It's rude.", "You should stop."], "Please don't do that.")),
    ("RoT: It's bad to yell, even when angry. Response: Calm down.",
     (["It's bad to yell, even when angry."], "Calm down.")),
    ("That sounds fun!", ([], "That sounds fun!")),
    ("RoT: It's rude., You should", (["It's rude.", "You should"], "")),  # cut off before the response
    ("RoT: Response: Hi.", ([], "Hi.")),
    ("  ", ([], "")),
])
def test_parse_prost_output(text, expected):
  assert f.parse_prost_output(text) == expected


def test_round_trips():
  for label in SAFETY_LABELS:
    target = f.canary_target(label, ["It's rude.", "You should stop."])
    parsed = f.parse_canary_output(target)
    assert parsed == (label, [] if label == "__casual__" else ["It's rude.", "You should stop."])
  rots, response = ["It's wrong to lie.", "You should be honest."], "Honesty matters, you know."
  assert f.parse_prost_output(f.prost_target(response, rots)) == (rots, response)
  assert f.split_rots(f.join_rots(rots)) == rots


def test_context_text_takes_utterances_or_a_formatted_context():
  assert f.context_text(["a", "b\nc"]) == f.format_history(["a", "b\nc"]) == "Bot: a User: b c"
  assert f.context_text(" I lied. ") == "User: I lied."  # one utterance: the user's
  assert f.context_text("Bot: a  User: b") == "Bot: a User: b"  # already formatted
  for empty in ("", "  ", []):
    with pytest.raises(ValueError, match="empty"):
      f.context_text(empty)
  with pytest.raises(ValueError, match="string"):
    f.context_text(["a", 3])
