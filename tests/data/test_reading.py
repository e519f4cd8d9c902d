"""The shared read loop's accounting and line rules (issue 16): every record of a file is
kept, skipped or left out on purpose, and counted; lines end only where files end them."""

import json
import logging

import pytest

from prosocial_jax.data import (empathetic_dialogues, persona_chat, prosocial_dialog,
                                social_chem_101, toxichat)
from prosocial_jax.data.errors import DataFormatError, MissingDataError
from prosocial_jax.data.reading import split_lines

from .test_bad_records import ED_HEADER, PD_GOOD, SC_GOOD, SC_HEADER, TOXI_GOOD, lines


def test_lines_end_at_lf_crlf_or_cr_only():
  assert split_lines("a\nb\r\nc\rd\u2028e\x85f\x0cg\n") == ["a", "b", "c", "d\u2028e\x85f\x0cg"]
  assert split_lines("a\n\n") == ["a", ""] and split_lines("") == []


def test_a_json_line_holding_u2028_raw_is_one_record(tmp_path):
  """JSON allows U+2028 (and U+0085) raw inside a string; str.splitlines would cut there."""
  path = tmp_path / "train.jsonl"
  thread = json.loads(TOXI_GOOD)
  thread["reddit_thread"][0]["text"] = "one\u2028two\x85three"
  path.write_text(json.dumps(thread, ensure_ascii=False) + "\n" + TOXI_GOOD + "\n")
  result = toxichat.CORPUS.read_file(path)
  assert [t.turns[0].text for t in result] == ["one\u2028two\x85three", "Hi"]


def test_a_csv_line_holding_u2028_is_one_utterance(tmp_path):
  path = tmp_path / "train.csv"
  path.write_text(ED_HEADER + "hit:0_conv:1,1,sad,p,1,I lost\u2028my keys.,,\n"
                  "hit:0_conv:1,2,sad,p,0,Oh no!,,\n")
  (conversation,) = empathetic_dialogues.CORPUS.read_file(path)
  assert conversation.utterances == ("I lost\u2028my keys.", "Oh no!")


def test_rows_left_out_on_purpose_are_counted(tmp_path, caplog):
  path = tmp_path / "social-chem-101.v1.0.tsv"
  path.write_text(SC_HEADER + SC_GOOD + SC_GOOD.replace("\ttrain\t", "\tdev-extra\t")
                  + SC_GOOD.replace("\t0\t", "\t1\t"))  # another split's row, a bad RoT
  with caplog.at_level(logging.INFO, logger="prosocial_jax.data"):
    result = social_chem_101.CORPUS.read_file(path)
  assert (len(result), result.skipped_count, result.left_out) == (1, 0, 2)
  assert f"Left out 2 record(s) of {path} that the corpus does not use" in caplog.text


def test_a_split_with_no_rows_in_a_one_file_release_is_missing(tmp_path):
  folder = tmp_path / "social_chem_101"
  folder.mkdir()
  (folder / "social-chem-101.v1.0.tsv").write_text(SC_HEADER + SC_GOOD)
  assert len(social_chem_101.CORPUS.load_split("train", tmp_path)) == 1
  with pytest.raises(MissingDataError, match=r"No 'test' records in .*social-chem-101.v1.0.tsv: "
                     r"its 1 records belong to \['train'\]"):
    social_chem_101.CORPUS.load_split("test", tmp_path)


def test_good_rows_of_a_skipped_dialogue_are_counted(tmp_path, caplog):
  row = json.loads(PD_GOOD)
  rows = [dict(row, dialogue_id=0, response_id=0), dict(row, dialogue_id=1, response_id=0),
          dict(row, dialogue_id=1, response_id=1, safety_label="__ok__"),
          dict(row, dialogue_id=1, response_id=2),
          dict(row, dialogue_id=2, response_id=0), dict(row, dialogue_id=2, response_id=0)]
  path = tmp_path / "train.jsonl"
  path.write_text(lines(*map(json.dumps, rows)))
  result = prosocial_dialog.CORPUS.read_file(path, skip_bad_records=True)
  # dialogue 0 kept; dialogue 1: a bad label (skipped) and two good rows (left out);
  # dialogue 2: a repeated response_id (skipped) and the other row (left out).
  assert [d.index for d in result] == [0]
  assert (result.skipped_count, result.left_out) == (2, 3)
  assert f"Left out 3 good row(s) of {path} with the dialogues their bad rows belong to" \
      in caplog.text


def test_a_file_of_one_hugging_face_row_is_that_row(tmp_path):
  """A JSON-lines file of one line is one JSON document: a row, not an object of columns."""
  path = tmp_path / "train.jsonl"
  path.write_text("\n" + PD_GOOD + "\n")
  (dialogue,) = prosocial_dialog.CORPUS.read_file(path)
  assert dialogue.turns[0].text == "Hi"
  path.write_text(PD_GOOD.replace('"__casual__"', '"__ok__"'))
  with pytest.raises(DataFormatError, match=r"train.jsonl: line 1: field 'safety_label': unknown label"):
    prosocial_dialog.CORPUS.read_file(path)


def test_a_persona_line_numbered_with_thousands_of_digits(tmp_path):
  """A number past int()'s 4,300-digit limit is just not 1: the line continues a dialogue."""
  path = tmp_path / "train_self_original.txt"
  path.write_text("1 your persona: i like cats.\n2 hi .\thello .\n" + "9" * 5000 + " a .\tb .\n")
  (dialogue,) = persona_chat.CORPUS.read_file(path)
  assert dialogue.utterances == ("hi .", "hello .", "a .", "b .")
