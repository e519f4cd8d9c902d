"""Bad input, case by case (issue 16): what the user got wrong, how the test makes it, the
entry point or reader that meets it, and the pieces of the message the user sees —
naming the file, the record and the field.

One table, `ROWS`. A row either runs here (`make`: builds the input under tmp_path and
returns the call that meets it) or says where its case is asserted already (`see`:
`tests/data/test_bad_records.py::<case id>`, or `<test file>::<test>`), so each case
lives in one place; for those rows the test below checks that the place exists and
asserts the same message pieces. Every error here is a `user_errors.UserError`, which
each entry point prints as `error: <message>` with exit status 2 (the last tests).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from typing import Callable

import gin
import pytest

import tasks
from prosocial_jax import gin_utils, infer, models, user_errors
from prosocial_jax.data import CORPORA, encoding
from prosocial_jax.data.__main__ import main as data_cli
from prosocial_jax.data.errors import AmbiguousSplitError, DataFormatError, MissingDataError
from prosocial_jax.inference.tools import Canary, Prost
from prosocial_jax.training import trainer

from ..data.test_bad_records import CASES, DD_GOOD

del models, trainer  # imported for their gin configurables, which the gin rows parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
# A file name each reader takes, from the bad-record cases.
FILE_NAMES: dict[str, str] = {}
for _case in CASES:
  FILE_NAMES.setdefault(_case[1].CORPUS.name, _case[2])


@dataclasses.dataclass(frozen=True)
class Row:
  case: str                      # what the user got wrong
  how: str                       # how the test makes it
  entry: str                     # the entry point or reader that meets it
  expect: tuple[str, ...]        # pieces of the message; {file} / {dir}: the paths made
  error: type | None = None      # the error raised (a UserError)
  make: Callable | None = None   # tmp_path -> (call, {"file": ..., "dir": ...})
  see: str | None = None         # where the case is asserted, when not here


def _read(corpus: str, content: str | bytes | None, name: str | None = None):
  """make(): `content` (None: nothing) in a file `corpus`'s reader takes, read by it."""
  def make(tmp_path):
    path = tmp_path / (name or FILE_NAMES[corpus])
    if content is not None:
      path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return (lambda: CORPORA[corpus].read_file(path)), {"file": str(path)}
  return make


def _infer_line(line: str, *, tool=Canary, mode="predict", with_rots=False):
  """make(): one `infer` input line, as line 3 of the file, through the input parser."""
  def make(tmp_path):
    del tmp_path
    stand_in = object.__new__(tool)  # inputs_text is all the parser asks of the tool
    return (lambda: infer.parse_line(3, line, stand_in, mode=mode, with_rots=with_rots)), {}
  return make


def _infer_file(content: bytes):
  def make(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    return (lambda: infer.read_lines(str(path))), {"file": str(path)}
  return make


def _gin(*bindings: str, file_text: str | None = None):
  """make(): the quickstart config (or a file of the user's including it) and bindings,
  through gin_utils.parse_gin, which train / eval / convert call."""
  def make(tmp_path):
    files = ["gin/quickstart.gin"]
    values = {}
    if file_text is not None:
      path = tmp_path / "mine.gin"
      path.write_text(file_text)
      files, values = [str(path)], {"file": str(path)}
    def call():
      gin.clear_config()
      try:
        gin_utils.parse_gin(files, list(bindings))
      finally:
        gin.clear_config()
    return call, values
  return make


def _task(name: str):
  def make(tmp_path):
    del tmp_path
    return (lambda: tasks.get_mixture_or_task(name)), {}
  return make


def _load_split(corpus: str, split: str, files: dict[str, str]):
  def make(tmp_path):
    folder = tmp_path / corpus
    if files:
      folder.mkdir()
    for name, content in files.items():
      (folder / name).write_text(content)
    return (lambda: CORPORA[corpus].load_split(split, str(tmp_path))), {"dir": str(folder)}
  return make


BAD_RECORDS = "tests/data/test_bad_records.py::"
QUICKSTART = "include 'gin/quickstart.gin'\nMODEL_DIR = 'runs/x'\n"

ROWS = [
    # --- files ----------------------------------------------------------------------------
    Row("missing file", "a path that does not exist", "any reader (Corpus.read_file)",
        ("{file}: file not found",), DataFormatError, _read("daily_dialog", None)),
    Row("missing corpus folder", "an empty data root", "Corpus.load_split (every task)",
        ("Corpus 'daily_dialog' not found: expected the folder {dir} (data root",
         "Download it with `python -m prosocial_jax.data download daily_dialog`"),
        MissingDataError, _load_split("daily_dialog", "train", {})),
    Row("missing split file", "the corpus folder holds train.json only", "Corpus.load_split",
        ("No 'test' split file in {dir}: expected a file whose name contains one of the words "
         "['test'] (e.g. test.json); found ['train.json']",),
        MissingDataError, _load_split("daily_dialog", "test", {"train.json": DD_GOOD})),
    Row("split file of another release", "persona_chat's valid.json (HF), not ParlAI's txt",
        "Corpus.load_split",
        ("No 'validation' split file in {dir} in the release format its reader takes (file "
         "names matching '(train|valid|test)_self_original(_no_cands)?\\\\.txt'): found "
         "['valid.json'], which it does not read",),
        MissingDataError, _load_split("persona_chat", "validation", {"valid.json": "[]"})),
    Row("two files for one split", "train.json and train_v2.json", "Corpus.load_split",
        ("Several 'train' split files in {dir}: ['train.json', 'train_v2.json']. Keep one",),
        AmbiguousSplitError,
        _load_split("daily_dialog", "train", {"train.json": DD_GOOD, "train_v2.json": DD_GOOD})),
    Row("missing infer input", "--input names no file", "infer --input",
        ("missing.jsonl does not exist",), see="tests/test_infer.py::"
        "test_errors_exit_2_with_a_message"),
    Row("missing gin file", "--gin_file=no_such.gin", "gin_utils.parse_gin (train/eval/convert)",
        ("no_such.gin",), see="tests/test_gin_utils.py::"
        "test_missing_gin_file_names_where_it_looked"),
    *[Row(f"empty file ({corpus})", "a file of 0 bytes (or blank lines)", f"{corpus} reader",
          ("{file}: the file is empty",), DataFormatError, _read(corpus, "\n \n"))
      for corpus in CORPORA],
    Row("a file of no records", "a JSON list with nothing in it ([])", "blended_skill_talk reader",
        ("{file}: the file holds no records",), DataFormatError,
        _read("blended_skill_talk", "[]")),
    Row("a header and no rows", "MIC.csv with its header line only", "moral_integrity_corpus reader",
        ("{file}: the file holds no records",), DataFormatError,
        _read("moral_integrity_corpus", "Q,A,rot,split\n")),
    Row("empty infer input", "an input file of blank lines", "infer --input",
        ("input {file} is empty: expected JSON lines, each an object with `context`.",),
        infer.InputError, _infer_file(b"\n\n")),
    # --- lines and rows -------------------------------------------------------------------
    Row("bad JSON line", "an unfinished object on line 2", "JSON-lines readers",
        ("{file}: line 2: invalid JSON",), see=BAD_RECORDS + "pd-bad-json dd-bad-json "
        "toxi-bad-json"),
    Row("bad JSON document", "a stray comma in a JSON list", "JSON-document readers",
        ("invalid JSON",), see=BAD_RECORDS + "wow-json"),
    Row("JSON nested too deeply", "100,000 [ on one line", "JSON-lines readers",
        ("{file}: line 1: invalid JSON: nested too deeply to decode",), DataFormatError,
        _read("toxichat", "[" * 100_000 + "\n")),
    Row("a JSON list for a JSON-lines reader", "DailyDialog as [ {...}, ... ]",
        "daily_dialog reader",
        ("{file}: the file is one JSON list; expected JSON lines (one dialogue object per line",),
        DataFormatError, _read("daily_dialog", f"[{DD_GOOD}]")),
    Row("text line without __eou__", "a line of the authors' format lacking __eou__",
        "daily_dialog reader (dialogues_*.txt)",
        ("{file}: line 1: no __eou__: a line of the authors' format ends each utterance",),
        DataFormatError, _read("daily_dialog", "Hi . Hello .\n", "dialogues_train.txt")),
    Row("bad TSV line", "a row with fewer fields than the header", "TSV readers",
        ("{file}: line 3: expected 8 fields (as in the header), got 4",),
        see=BAD_RECORDS + "sc-fields nb-no-tab"),
    Row("bad CSV line", "a raw comma in an EmpatheticDialogues utterance", "CSV readers",
        ("{file}: line 4: expected 8 or 9 comma-separated fields, got 10",),
        see=BAD_RECORDS + "ed-fields"),
    Row("unparsable CSV line", "a quoted field longer than csv's limit (131072)",
        "moral_integrity_corpus reader",
        ("{file}: line 2: unparsable line: field larger than field limit (131072)",),
        DataFormatError,
        _read("moral_integrity_corpus", 'Q,A,rot,split\n"' + "x" * 140_000 + '",A,rot,train\n')),
    Row("unparsable header line", "a header field longer than csv's limit", "social_chem_101 reader",
        ("{file}: line 1: unparsable header line: field larger than field limit",),
        DataFormatError, _read("social_chem_101", "x" * 140_000 + "\trot\n")),
    Row("bad infer line", "`{not json` on line 3", "infer input parser",
        ("line 3: not JSON (",), infer.InputError, _infer_line("{not json")),
    # --- fields ---------------------------------------------------------------------------
    Row("missing field", "a record without a required field", "every reader",
        ("{file}: line 2: field 'dialogue': missing",),
        see=BAD_RECORDS + "dd-missing bst-missing tc-missing wow-missing toxi-missing"),
    Row("wrong type", "a number where text is expected", "every reader",
        ("{file}: line 2, utterance 0: field 'text': expected a string, got number",),
        see=BAD_RECORDS + "dd-type tc-type bst-type wow-type toxi-type pd-missing"),
    Row("unknown safety label", "safety_label '__ok__'", "prosocial_dialog reader (HF rows)",
        ("{file}: line 2: field 'safety_label': unknown label '__ok__'",),
        see=BAD_RECORDS + "pd-label"),
    Row("unknown safety label (direct download)", "safety_label '__ok__' in a turn",
        "prosocial_dialog reader (direct)", ("safety_label", "unknown label '__ok__'"),
        see="tests/data/test_prosocial_dialog_reader.py::test_bad_turn_names_file_record_and_field"),
    Row("empty dialogue", "a dialogue with no utterances", "every reader",
        ("{file}: line 2: field 'dialogue': empty list",),
        see=BAD_RECORDS + "dd-empty bst-empty wow-empty tc-empty toxi-empty pc-empty-dialogue"),
    Row("empty dialogue (direct download)", "[] among the dialogues", "prosocial_dialog reader",
        ("dialogue 1", "has no turns"),
        see="tests/data/test_prosocial_dialog_reader.py::test_bad_structure"),
    Row("lone UTF-16 surrogate", 'a JSON escape "\\ud800" without its pair', "JSON readers",
        ("{file}: line 1, utterance 0: field 'text': not valid Unicode text: a lone surrogate "
         "'\\ud800' at character 2",), DataFormatError,
        _read("daily_dialog", '{"dialogue": [{"text": "hi\\ud800"}, {"text": "x"}]}\n')),
    Row("infer line without context", '{"text": "..."}', "infer input parser",
        ("line 3: field 'context' is missing",), infer.InputError,
        _infer_line('{"text": "no context"}')),
    Row("infer context of the wrong type", '{"context": 7}', "infer input parser",
        ("line 3: field 'context' must be a string or a list of strings, not int",),
        infer.InputError, _infer_line('{"context": 7}')),
    Row("infer context empty", '{"context": []}', "infer input parser",
        ("line 3: field 'context': the context is an empty list of utterances",),
        infer.InputError, _infer_line('{"context": []}')),
    Row("infer rots missing (--with_rots)", '{"context": "Hi."} with --with_rots', "infer (Prost)",
        ("line 3: field 'rots' (--with_rots) must be a string or a list of strings; it is missing",),
        infer.InputError, _infer_line('{"context": "Hi."}', tool=Prost, with_rots=True)),
    Row("infer lone surrogate", '{"context": "\\udc00"}', "infer input parser",
        ("line 3: field 'context': not valid Unicode text (a lone surrogate",),
        infer.InputError, _infer_line('{"context": "\\udc00"}')),
    # --- bytes and lengths ----------------------------------------------------------------
    Row("non-UTF-8 bytes", "byte 0xff on line 2", "every reader",
        (f"{{file}}: line 2: not UTF-8 text (byte {len(DD_GOOD) + 1}: b'\\xff'); convert the "
         "file to UTF-8",), DataFormatError,
        _read("daily_dialog", DD_GOOD.encode() + b"\n\xff\n")),
    Row("non-UTF-8 bytes (infer)", "byte 0xff on line 2 of the input", "infer --input",
        ("input {file} line 2: not UTF-8 text (byte 18: b'\\xff'); convert the file to UTF-8.",),
        infer.InputError, _infer_file(b'{"context": "Hi"}\n\xff\n')),
    # --- the run's configuration ----------------------------------------------------------
    Row("vocabulary not the checkpoint's", "resume with another vocabulary than the one "
        "recorded", "train (resume: check_compatible)",
        ("vocabulary: checkpoint was trained with tasks/vocab/prosocial_sample.model (sha256 ",
         "this run uses the byte vocabulary"),
        see="tests/checkpoints/test_compatibility.py::"
        "test_vocabularies_are_identified_by_kind_file_and_extra_ids"),
    Row("unknown task name", "MIXTURE_OR_TASK_NAME 'prosocial_dialog_canray'",
        "tasks.get_mixture_or_task",
        ("unknown task or mixture 'prosocial_dialog_canray'. Nearest: prosocial_dialog_canary",
         "`import my_tasks` in the gin file"), tasks.UnknownTaskError,
        _task("prosocial_dialog_canray")),
    Row("unknown task name (eval --task)", "--task=prosocial_dialog_canry",
        "python -m prosocial_jax.eval",
        ("unknown task or mixture 'prosocial_dialog_canry'. Nearest: prosocial_dialog_canary",),
        see="tests/test_eval.py::test_bad_input_exits_2_with_a_message"),
    Row("gin typo: parameter", "--gin.train.steps=3", "gin_utils.parse_gin",
        ("gin config: Configurable 'train' doesn't have a parameter named 'steps'.",
         "In bindings string line 2", "Did you mean: train_steps?"),
        gin_utils.GinConfigError, _gin("MODEL_DIR = 'x'", "train.steps = 3")),
    Row("gin typo: configurable", "--gin.trian.train_steps=3", "gin_utils.parse_gin",
        ("gin config: No configurable matching 'trian'.", "Did you mean: train?"),
        gin_utils.GinConfigError, _gin("MODEL_DIR = 'x'", "trian.train_steps = 3")),
    Row("gin typo: macro", "--gin.TRAIN_STEPZ=10", "gin_utils.parse_gin",
        ("gin config: the binding `TRAIN_STEPZ = 10` sets macro TRAIN_STEPZ, which no "
         "configuration uses.", "Did you mean: TRAIN_STEPS?"),
        gin_utils.GinConfigError, _gin("MODEL_DIR = 'x'", "TRAIN_STEPZ = 10")),
    Row("gin typo in a file", "a gin file of the user's: `adam.learning_rat = 3`",
        "gin_utils.parse_gin",
        ("gin config: Configurable 'adam' doesn't have a parameter named 'learning_rat'.",
         'In file "{file}", line 3', "Did you mean: learning_rate?"),
        gin_utils.GinConfigError, _gin(file_text=QUICKSTART + "adam.learning_rat = 3\n")),
    Row("gin: a macro used but never set", "`t5_1_1_config.size = %SIZEZ`", "gin_utils.parse_gin",
        ("gin config: macro %SIZEZ is used (by t5_1_1_config.size) but never set",),
        gin_utils.GinConfigError, _gin("MODEL_DIR = 'x'", "t5_1_1_config.size = %SIZEZ")),
    Row("gin: a required macro left unset", "no MODEL_DIR", "gin_utils.parse_gin",
        ("gin config: MODEL_DIR/macro.value set to `%gin.REQUIRED` but not subsequently "
         "overridden.", "Set it with --gin.MODEL_DIR=VALUE"),
        gin_utils.GinConfigError, _gin()),
    Row("gin: an unquoted string", "--gin.MODEL_DIR=runs/x", "gin_utils.parse_gin",
        ("Failed to parse token 'runs'", "A string value needs quotes inside the flag: "
         "--gin.MODEL_DIR=\"'runs/x'\"."),
        gin_utils.GinConfigError, _gin("MODEL_DIR = runs/x")),
    Row("gin: an unquoted absolute path", "--gin_bindings='MODEL_DIR = /tmp/x'",
        "gin_utils.parse_gin",
        ("Unable to parse value", "A string value needs quotes inside the flag: "
         "--gin.MODEL_DIR=\"'runs/x'\"."),
        gin_utils.GinConfigError, _gin("MODEL_DIR = /tmp/x")),
]

def _id(row: Row) -> str:
  return re.sub(r"[^a-z0-9]+", "-", row.case.lower()).strip("-")


RUN_HERE = [row for row in ROWS if row.make]
SEEN_ELSEWHERE = [row for row in ROWS if row.see]


@pytest.mark.parametrize("row", RUN_HERE, ids=[_id(r) for r in RUN_HERE])
def test_bad_input_gets_a_message_naming_where(tmp_path, row):
  call, paths = row.make(tmp_path)
  with pytest.raises(user_errors.UserError) as info:
    call()
  if row.error is not None:
    assert type(info.value) is row.error  # pylint: disable=unidiomatic-typecheck
  message = user_errors.message_of(info.value)
  for piece in row.expect:
    assert piece.format(**paths) in message


def _bad_records_message(case) -> str:
  """The message of a test_bad_records case, with {file} for its file."""
  _, _, _, _, record, field, problem = case
  return f"{{file}}: {record}: " + (f"field {field!r}: " if field else "") + problem


@pytest.mark.parametrize("row", SEEN_ELSEWHERE, ids=[_id(r) for r in SEEN_ELSEWHERE])
def test_cases_asserted_elsewhere_exist_and_assert_these_messages(row):
  """A `see` row names cases that assert the same message: the reference cannot rot into
  a case that no longer exists or that says something else."""
  where, names = row.see.split("::")
  source = (ROOT / where).read_text()
  if where + "::" == BAD_RECORDS:
    by_id = {case[0]: case for case in CASES}
    messages = []
    for case_id in names.split():
      if case_id in by_id:
        messages.append(_bad_records_message(by_id[case_id]))
      else:  # a whole-file case, listed by its id in that file
        assert f'"{case_id}"' in source, f"{where} has no case {case_id}"
        messages.append(source)
    for piece in row.expect:
      assert any(piece in message for message in messages), piece
    return
  assert f"def {names}(" in source, f"{where} has no test {names}"
  for piece in row.expect:
    assert piece in source, f"{where} does not assert {piece!r}"


def test_every_case_of_the_issue_has_a_row():
  cases = " | ".join(row.case for row in ROWS)
  for case in ("missing file", "empty file", "bad JSON line", "bad TSV line", "bad CSV line",
               "missing field", "wrong type", "unknown safety label", "empty dialogue",
               "non-UTF-8 bytes", "vocabulary not the checkpoint's", "unknown task name",
               "gin typo", "infer line without context"):
    assert case in cases, case


def test_text_longer_than_the_feature_length_is_cut_from_the_left():
  """Not an error: an input is cut to its last `length - 1` tokens plus EOS (the latest
  turns matter most), the same rule in the tasks (left_truncate) and in inference."""
  vocabulary = encoding.make_vocabulary(encoding.BYTE)
  text = "User: " + "an old turn " * 50 + "Bot: the latest turn"
  ids = encoding.encode_input(vocabulary, text, 16)
  assert len(ids) == 16 and ids[-1] == vocabulary.eos_id
  assert ids[:-1] == list(vocabulary.encode(text))[-15:]
  assert vocabulary.decode(ids[:-1]) == text[-15:] == "the latest turn"
  target = encoding.encode_target(vocabulary, "__needs_caution__ " + "x" * 100, 8)
  assert vocabulary.decode(target[:-1]) == "__needs"  # targets keep their start: the label


# ---------------------------------------------------------------- what the user sees

@pytest.mark.parametrize("error", [
    DataFormatError("/d/train.json", "unknown label '__ok__'", record="line 2",
                    field="safety_label"),
    MissingDataError("Corpus 'toxichat' not found"),
    AmbiguousSplitError("Several 'train' split files"),
    gin_utils.GinConfigError("gin config: No configurable matching 'trian'."),
    gin_utils.GinFileNotFoundError("gin file 'x.gin' not found"),
    tasks.UnknownTaskError("unknown task or mixture 'x'"),
    infer.InputError("line 3: field 'context' is missing"),
], ids=lambda e: type(e).__name__)
def test_every_entry_point_prints_the_message_and_exits_2(capsys, error):
  with pytest.raises(SystemExit) as stop:
    with user_errors.exit_on():
      raise error
  assert stop.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith(f"error: {error}\n") and "Traceback" not in err


def test_a_message_with_a_lone_surrogate_still_prints(tmp_path, capsys):
  """A record named after a JSON key holding an escaped surrogate: the message is escaped,
  so printing it cannot fail in turn."""
  path = tmp_path / "train.json"
  path.write_text(json.dumps({"a\ud800": {"content": []}}))
  with pytest.raises(SystemExit):
    with user_errors.exit_on():
      CORPORA["topical_chat"].read_file(path)
  assert "conversation a\\ud800: field 'content': empty list" in capsys.readouterr().err


def test_the_data_command_reports_a_missing_corpus_with_status_2(tmp_path, capsys):
  with pytest.raises(SystemExit) as stop:
    data_cli(["toxichat-threads", "test", "--output", str(tmp_path / "out.jsonl"),
              "--data_root", str(tmp_path)])
  assert stop.value.code == 2
  err = capsys.readouterr().err
  assert f"error: Corpus 'toxichat' not found: expected the folder {tmp_path / 'toxichat'}" in err


def test_infer_reports_an_empty_input_with_status_2(tmp_path, capsys):
  source = tmp_path / "in.jsonl"
  source.write_text("\n")
  with pytest.raises(SystemExit) as stop:
    infer.main([f"--model_dir={tmp_path / 'no_model'}", f"--input={source}",
                f"--output={tmp_path / 'out.jsonl'}"])
  assert stop.value.code == 2
  assert f"error: input {source} is empty" in capsys.readouterr().err


def test_train_names_an_unknown_task_before_it_builds_anything():
  import gin
  from prosocial_jax import train
  gin.clear_config()
  try:
    gin.parse_config("MIXTURE_OR_TASK_NAME = 'prosocial_dialog_canray'")
    with pytest.raises(tasks.UnknownTaskError, match="Nearest: prosocial_dialog_canary"):
      train._check_task_name()
    gin.clear_config()
    gin.parse_config("MIXTURE_OR_TASK_NAME = 'prosocial_dialog_canary'")
    train._check_task_name()  # a registered name passes
  finally:
    gin.clear_config()
