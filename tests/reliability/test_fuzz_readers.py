"""Property-based fuzzing (issue 16) of every reader in prosocial_jax/data, the tasks'
example builders and postprocessors (pure functions of records or text), and the
`infer` input parser: arbitrary bytes, text and JSON-ish records raise nothing but our
documented errors (`user_errors.UserError`: DataFormatError, InputError, ...), and
nothing is dropped without being counted — every record of a file is kept, skipped with
its error, or left out on purpose and counted (`ReadResult.left_out`); every record
becomes the examples its tasks promise.

Records are drawn from strategies shaped like each release (so most get past the
first check and reach the deeper ones), with any JSON value in any field; raw files are
valid synthetic ones mangled byte by byte. Fast: a few dozen examples per property.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import tempfile

import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prosocial_jax import infer
from prosocial_jax.data import CORPORA, formatting, synthetic
from prosocial_jax.data.errors import DataFormatError
from prosocial_jax.data.labels import CASUAL, NEEDS_CAUTION, SAFETY_LABELS
from prosocial_jax.data.reading import split_lines
from prosocial_jax.inference.tools import Canary, Prost
from prosocial_jax.user_errors import UserError
from tasks import preprocessors
from tasks.registration import TASK_EXAMPLES
from tasks.sources import example_columns

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------- strategies

# Characters that have broken readers elsewhere: line breaks str.splitlines knows but
# files do not, lone surrogates (from JSON escapes), separators, quotes, NUL, a BOM.
SPECIALS = ["", " ", "\n", "\r", "\r\n", "\t", "\u2028", "\x85", "\x0c", "\ud800", "\udfff",
            ",", '"', "\x00", "\ufeff", "__eou__", "_comma_", "User:", "é", "1 "]
texts = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(SPECIALS)),
                 max_size=4).map("".join)
keys = st.one_of(st.text(max_size=4), st.sampled_from(["text", "context", "dialog", "\ud800"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6)


def maybe(strategy):
  """`strategy`'s values, and now and then any JSON value instead."""
  return st.one_of(strategy, strategy, json_values)


def record(required: dict, optional: dict | None = None):
  """A JSON object with `required` fields (each may be dropped or be any JSON value) and
  `optional` ones; or, now and then, not an object at all."""
  fields = st.fixed_dictionaries(
      {}, optional={**{k: maybe(v) for k, v in required.items()},
                    **{k: maybe(v) for k, v in (optional or {}).items()}})
  complete = st.fixed_dictionaries({k: maybe(v) for k, v in required.items()},
                                   optional={k: maybe(v) for k, v in (optional or {}).items()})
  return st.one_of(complete, complete, fields, json_values)


def line_texts(strategy=texts):
  """Text with no line break of any kind (for line-per-record formats)."""
  return strategy.map(lambda t: "".join(c for c in t if c not in "\r\n"))


def file_texts(strategy=texts):
  """Text that can be written as UTF-8 (no lone surrogate), without NUL (csv refuses it)."""
  return strategy.map(lambda t: t.encode("utf-8", "ignore").decode().replace("\x00", ""))


def dumps(value, ascii_only: bool) -> bytes:
  """JSON of `value`: escaped ASCII, or raw UTF-8 (a lone surrogate written as its bytes
  makes the file not UTF-8: one more bad input)."""
  return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------- reading, checked

def printable(text: str) -> str:
  return text.encode("utf-8", "backslashreplace").decode("utf-8")


def read_both(corpus, path):
  """Reads `path` strictly and skipping bad records, checks that they agree, and returns
  the skip-mode result (None when the whole file is refused, in both modes)."""
  try:
    strict, strict_error = corpus.read_file(path), None
  except UserError as error:
    strict, strict_error = None, error
    assert isinstance(error, DataFormatError) and str(error).startswith(f"{path}: "), error
  try:
    lenient = corpus.read_file(path, skip_bad_records=True)
  except UserError as error:
    assert strict_error is not None and str(error).startswith(f"{path}: "), error
    return None
  for error in lenient.skipped:  # each names the file and the record
    assert isinstance(error, DataFormatError) and error.path == str(path) and error.record
    # (the message escapes text it could not print, as a lone surrogate in a JSON key)
    assert str(error).startswith(printable(f"{path}: {error.record}: "))
  if strict_error is None:
    assert lenient.skipped_count == 0
    assert lenient.records == strict.records and lenient.left_out == strict.left_out
  else:
    assert lenient.skipped_count >= 1 and str(lenient.skipped[0]) == str(strict_error)
  return lenient


def check_examples(corpus_name: str, result) -> None:
  """Every task of the corpus builds its examples from the records: as many as it
  promises, each a non-empty context and a target that TF takes as UTF-8 strings."""
  turns = lambda: (t for d in result for t in d.turns)  # ProsocialDialog
  expected = {
      "canary": lambda: sum(len(c.utterances) for c in result),
      "prost": lambda: sum(1 for c in result for k in c.responses if k > 0),
      "prosocial_dialog_canary": lambda: sum(1 for _ in turns()),
      "prosocial_dialog_safety": lambda: sum(1 for _ in turns()),
      "prosocial_dialog_rot": lambda: sum(1 for t in turns() if formatting.clean_rots(t.rots)),
      "prosocial_dialog_prost": lambda: sum(1 for t in turns() if t.response and t.response.strip()),
      "toxichat_safety": lambda: sum(len(t.turns) + len(t.replies) for t in result),
      "norm": lambda: len(result),
  }
  for name, examples_of in TASK_EXAMPLES.items():
    if examples_of.corpus is not CORPORA[corpus_name]:
      continue
    examples = examples_of.build(result)
    key = next((k for k in sorted(expected, key=len, reverse=True) if name.startswith(k)),
               "norm" if CORPORA[corpus_name].role == "social_norms" else name.rsplit("_", 1)[1])
    assert len(examples) == expected[key](), name
    for example in examples:
      assert isinstance(example["context"], str) and example["context"].strip()
      assert isinstance(example["target"], str)
    if examples:
      columns = [k for k, v in examples[0].items() if isinstance(v, str)]
      example_columns(examples, {k: tf.string for k in columns})  # what the source feeds TF


def fuzz_file(corpus_name: str, name: str, content: bytes, units: int | None):
  """Writes `content` as `name`, reads it both ways; with `units` (the records written),
  checks that every one is kept, skipped or left out; then builds the tasks' examples."""
  with tempfile.TemporaryDirectory() as folder:
    path = pathlib.Path(folder) / name
    path.write_bytes(content)
    result = read_both(CORPORA[corpus_name], path)
  if result is None:
    return
  if units is not None:
    kept = (sum(len(d.turns) for d in result) if corpus_name == "prosocial_dialog"
            and name.endswith(".jsonl") else
            sum(len(c.utterances) for c in result) if corpus_name == "empathetic_dialogues"
            else len(result))
    assert kept + result.skipped_count + result.left_out == units
  check_examples(corpus_name, result)


def json_lines(values, ascii_only) -> tuple[bytes, int]:
  return b"\n".join(dumps(v, ascii_only) for v in values) + b"\n", len(values)


# ---------------------------------------------------------------- one property per reader

utterance = record({"text": texts})


@FUZZ
@given(st.lists(record({"dialogue": st.lists(utterance, max_size=3)}, {"topic": texts}),
                min_size=1, max_size=4), st.booleans())
def test_daily_dialog_json_lines(dialogues, ascii_only):
  fuzz_file("daily_dialog", "train.json", *json_lines(dialogues, ascii_only))


@FUZZ
@given(st.lists(st.lists(file_texts(line_texts()), max_size=4), min_size=1, max_size=4))
def test_daily_dialog_text_format(dialogues):
  lines = [" __eou__ ".join(d) + (" __eou__" if d else "") for d in dialogues]
  content = "\n".join(lines) + "\n"
  units = sum(1 for line in split_lines(content.removeprefix("\ufeff")) if line.strip())
  fuzz_file("daily_dialog", "dialogues_train.txt", content.encode(), units)


toxi_turn = record({"text": texts, "offense_label": st.sampled_from(["Safe", "Offensive"])},
                   {"offense_targets": st.lists(texts, max_size=2)})


@FUZZ
@given(st.lists(record({"reddit_thread": st.lists(toxi_turn, max_size=3)},
                       {"final_dgpt_response": toxi_turn, "final_gpt3_response": toxi_turn}),
                min_size=1, max_size=4), st.booleans())
def test_toxichat(threads, ascii_only):
  fuzz_file("toxichat", "train.jsonl", *json_lines(threads, ascii_only))


def json_document(strategy, corpus_name, name):
  @FUZZ
  @given(strategy, st.booleans())
  def test(document, ascii_only):
    units = len(document) if isinstance(document, (list, dict)) else None
    fuzz_file(corpus_name, name, dumps(document, ascii_only), units)
  return test


test_blended_skill_talk = json_document(
    maybe(st.lists(record({"dialog": st.lists(st.tuples(st.integers(0, 1), texts).map(list),
                                              max_size=4)},
                          {"free_turker_utterance": texts, "guided_turker_utterance": texts}),
                   max_size=4)),
    "blended_skill_talk", "train.json")

test_wizard_of_wikipedia = json_document(
    maybe(st.lists(record({"dialog": st.lists(record(
        {"speaker": st.sampled_from(["0_Wizard", "1_Apprentice"]), "text": texts}), max_size=4)},
        {"chosen_topic": texts}), max_size=4)),
    "wizard_of_wikipedia", "train.json")

test_topical_chat = json_document(
    maybe(st.dictionaries(keys, record({"content": st.lists(record(
        {"message": texts, "agent": st.sampled_from(["agent_1", "agent_2"])}), max_size=4)}),
        max_size=4)),
    "topical_chat", "train.json")

pd_turn = record({"text": texts, "safety_label": st.sampled_from(SAFETY_LABELS)},
                 {"labels": st.lists(texts, max_size=2), "rots": st.lists(texts, max_size=2),
                  "episode_done": st.booleans(), "source": texts})


@FUZZ
@given(st.lists(st.lists(pd_turn, max_size=3), min_size=1, max_size=1),
       st.lists(maybe(st.lists(pd_turn, max_size=3)), max_size=3), st.booleans())
def test_prosocial_dialog_direct_download(first, rest, ascii_only):
  dialogues = first + rest  # the first a list: the file starts "[[" (or "[]")
  fuzz_file("prosocial_dialog", "train.json", dumps(dialogues, ascii_only), len(dialogues))


pd_row = record({"context": texts, "response": texts,
                 "safety_label": st.sampled_from(SAFETY_LABELS),
                 "dialogue_id": st.integers(0, 2), "response_id": st.integers(0, 2)},
                {"rots": st.lists(texts, max_size=2), "episode_done": st.booleans()})


@FUZZ
@given(st.lists(pd_row, min_size=2, max_size=6), st.booleans())
def test_prosocial_dialog_hugging_face_rows(rows, ascii_only):
  """Rows group into dialogues; a dialogue with a bad row (or a repeated response_id) is
  left out whole: its bad row is skipped, its good rows counted as left out."""
  content, units = json_lines(rows, ascii_only)
  fuzz_file("prosocial_dialog", "train.jsonl", content, units)


ed_field = file_texts(line_texts())


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["hit:0_conv:1", "hit:1_conv:2", ""]),
                          st.one_of(st.integers(0, 3).map(str), ed_field),
                          ed_field, ed_field, ed_field,
                          st.lists(ed_field, min_size=0, max_size=2)),
                min_size=1, max_size=6))
def test_empathetic_dialogues(rows):
  lines = ["conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags"]
  lines += [",".join([conv, idx, "sad", prompt, "0", text, *extra]) for conv, idx, prompt, text,
            _, extra in rows]
  units = sum(1 for line in lines[1:] if line.strip())
  fuzz_file("empathetic_dialogues", "train.csv", ("\n".join(lines) + "\n").encode(), units)


@FUZZ
@given(st.lists(st.lists(st.tuples(file_texts(line_texts()), file_texts(line_texts())),
                         max_size=3), min_size=1, max_size=4))
def test_persona_chat(dialogues):
  """Each dialogue starts at its `1 ` line; its other lines are numbered from 2."""
  lines = []
  for turns in dialogues:
    lines.append("1 your persona: i like cats.")
    lines += [f"{k} {a}\t{b}\t\tcand|x" for k, (a, b) in enumerate(turns, start=2)]
  fuzz_file("persona_chat", "train_self_original.txt", ("\n".join(lines) + "\n").encode(),
            len(dialogues))


def table(rows, delimiter) -> bytes:
  """CSV/TSV as the csv module writes it. CRLF line ends: so a field holding a lone CR is
  quoted too (with LF ends it would be written raw, and end the line when read back)."""
  out = io.StringIO()
  csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
  return out.getvalue().encode()


cell = file_texts()


@FUZZ
@given(st.lists(st.one_of(
    st.tuples(st.sampled_from(["train", "dev", "test", "dev-extra", "none", "trian"]),
              st.sampled_from(["0", "1", "yes"]), cell, cell).map(
        lambda r: ["aita", "1", r[0], "4", r[1], r[2], r[3], "r/1"]),
    st.lists(cell, min_size=1, max_size=9)), min_size=1, max_size=5))
def test_social_chem_101(rows):
  """Rows of other splits and RoTs marked bad are left out on purpose, and counted."""
  header = ["area", "m", "split", "rot-agree", "rot-bad", "situation", "rot", "rot-id"]
  fuzz_file("social_chem_101", "social-chem-101.v1.0.tsv", table([header, *rows], "\t"),
            len(rows))


@FUZZ
@given(st.lists(st.one_of(
    st.tuples(cell, cell, cell, st.sampled_from(["train", "dev", "test", "eval"])).map(list),
    st.lists(cell, min_size=1, max_size=6)), min_size=1, max_size=5))
def test_moral_integrity_corpus(rows):
  fuzz_file("moral_integrity_corpus", "MIC.csv", table([["Q", "A", "rot", "split"], *rows], ","),
            len(rows))


@FUZZ
@given(st.lists(st.lists(file_texts(line_texts()), min_size=1, max_size=3), min_size=1,
                max_size=5), st.booleans())
def test_commonsense_norm_bank(rows, with_header):
  if with_header:
    content = table([["input_sequence", "text_label"], *rows], "\t")
    units = len(rows)
  else:
    content = ("\n".join("\t".join(r) for r in rows) + "\n").encode()
    if "input_sequence" in split_lines(content.decode())[0].split("\t"):
      return  # a first line naming that column is a header line
    # The reader decodes utf-8-sig: a leading BOM marks the encoding and is no text.
    units = sum(1 for line in split_lines(content.decode().removeprefix("\ufeff"))
                if line.strip())
  fuzz_file("commonsense_norm_bank", "train.freeform.tsv", content, units)


# ---------------------------------------------------------------- raw bytes, every reader

@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
  """One valid synthetic file per corpus (its train split, or its only file)."""
  root = synthetic.write_data_root(str(tmp_path_factory.mktemp("synthetic")), dialogues=2,
                                   splits=("train",))
  return {name: CORPORA[name].split_files("train", root)[0] for name in CORPORA}


mutations = st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace", "truncate"]),
                               st.floats(0, 1), st.binary(min_size=1, max_size=8)),
                     min_size=1, max_size=3)


@pytest.mark.parametrize("corpus_name", list(CORPORA))
@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutations)
def test_mangled_release_files(valid_files, corpus_name, edits):
  data = bytearray(pathlib.Path(valid_files[corpus_name]).read_bytes())
  for kind, where, blob in edits:
    at = int(where * len(data))
    if kind == "insert":
      data[at:at] = blob
    elif kind == "delete":
      del data[at:at + len(blob)]
    elif kind == "replace":
      data[at:at + len(blob)] = blob
    else:
      del data[at:]
  fuzz_file(corpus_name, os.path.basename(valid_files[corpus_name]), bytes(data), None)


@FUZZ
@given(st.binary(max_size=64))
def test_arbitrary_bytes(data):
  for corpus_name in CORPORA:
    fuzz_file(corpus_name, os.path.basename(
        {"social_chem_101": "social-chem-101.v1.0.tsv", "moral_integrity_corpus": "MIC.csv",
         "persona_chat": "train_self_original.txt", "empathetic_dialogues": "train.csv",
         "commonsense_norm_bank": "train.tsv", "toxichat": "train.jsonl"}.get(
             corpus_name, "train.json")), data, None)


# ---------------------------------------------------------------- postprocessors

@FUZZ
@given(st.one_of(texts, st.binary(max_size=40), st.sampled_from(
    [f"{label} {rots}" for label in SAFETY_LABELS for rots in ("", "It's bad, You should.")])))
def test_postprocessors_take_any_output(output):
  canary = preprocessors.canary_postprocessor(output)
  assert canary.label in (*SAFETY_LABELS, None) and all(isinstance(r, str) for r in canary.rots)
  assert preprocessors.binary_safety_postprocessor(output).label in (CASUAL, NEEDS_CAUTION, None)
  prost = preprocessors.prost_postprocessor(output)
  assert isinstance(prost.response, str) and all(isinstance(r, str) for r in prost.rots)
  assert preprocessors.rots_postprocessor(output).rots == formatting.split_rots(str(canary))
  text = preprocessors.text_postprocessor(output)
  assert text == text.strip()


@FUZZ
@given(st.lists(st.integers(2, 200), max_size=30), st.integers(1, 12))
def test_left_truncate_keeps_the_last_tokens(ids, length):
  """The tasks' TF cut equals the rule inference uses (data/encoding.py): the last
  `length - 1` tokens (room for EOS)."""
  from prosocial_jax.data.encoding import kept_input_length  # pylint: disable=import-outside-toplevel
  feature = type("Feature", (), {"add_eos": True})()
  dataset = tf.data.Dataset.from_tensors({"inputs": tf.constant(ids, tf.int32, shape=[len(ids)])})
  cut = next(iter(preprocessors.left_truncate(dataset, {"inputs": feature}, {"inputs": length})))
  keep = kept_input_length(length)
  assert cut["inputs"].numpy().tolist() == ids[max(len(ids) - keep, 0):]


# ---------------------------------------------------------------- the infer input parser

infer_records = st.one_of(
    record({"context": st.one_of(texts, st.lists(texts, max_size=3))},
           {"rots": st.one_of(texts, st.lists(texts, max_size=2)), "target": texts}),
    json_values)


@FUZZ
@given(st.one_of(infer_records.map(lambda r: json.dumps(r)), texts),
       st.sampled_from([(Canary, False), (Prost, False), (Prost, True)]),
       st.sampled_from(["predict", "score"]))
def test_infer_parser_takes_any_line(line, tool_and_rots, mode):
  tool, with_rots = tool_and_rots
  stand_in = object.__new__(tool)  # inputs_text is all the parser asks of the tool
  try:
    record_, text = infer.parse_line(7, line, stand_in, mode=mode, with_rots=with_rots)
  except infer.InputError as error:
    assert str(error).startswith("line 7: ")
    return
  assert record_ == json.loads(line) and isinstance(record_, dict)
  expected = formatting.context_text(record_["context"])
  if with_rots:
    rots = record_["rots"]
    expected = formatting.gold_rot_context(expected, [rots] if isinstance(rots, str) else rots)
  assert text == expected and text.strip()
  json.dumps({**record_, "inputs": text}, ensure_ascii=False).encode("utf-8")  # writable


@FUZZ
@given(st.one_of(st.binary(max_size=80),
                 st.lists(st.one_of(infer_records.map(json.dumps), texts), max_size=4).map(
                     lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))))
def test_infer_reads_any_input_file(data):
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "in.jsonl")
    with open(path, "wb") as f:
      f.write(data)
    try:
      lines = infer.read_lines(path)
    except infer.InputError as error:
      assert str(error).startswith(f"input {path}")
      return
  text = data.decode("utf-8-sig")
  assert [line for _, line in lines] == [line for line in split_lines(text) if line.strip()]
  assert lines  # an input of no lines is refused
