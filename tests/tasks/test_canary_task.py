"""The prosocial_dialog_canary task on hand-written files: inputs, targets, truncation, data root."""

import json

import pytest
import seqio
import tensorflow as tf

import tasks
from prosocial_jax.data.errors import MissingDataError
from tasks import preprocessors
from tasks.prosocial_dialog import CANARY_TASK


def _turn(text, response, label, rots, done=False):
  return {"text": text, "labels": [response], "rots": rots, "safety_label": label,
          "safety_annotations": ["needs caution"] * 3, "safety_annotation_reasons": ["a", "b", "c"],
          "source": "socialchemistry", "etc": "", "episode_done": done}


TRAIN = [[
    _turn("I skipped my friend's party to play games.", "He might feel hurt that you didn't come.",
          "__probably_needs_caution__", ["You should show up for your friends."]),
    _turn("He'll get over it, he has other friends.", "Maybe, but a quick apology would mean a lot.",
          "__needs_caution__", ["It's hurtful to dismiss a friend's feelings.", "You should apologize."]),
    _turn("Fine, I'll take him to lunch.", "That's a nice way to make amends.", "__casual__", [], done=True),
]]
VALID = [[_turn("I baked bread with my kids today.", "That sounds lovely!", "__casual__", None, done=True)]]


def _write_root(root, train=TRAIN, valid=VALID):
  folder = root / "prosocial_dialog"
  folder.mkdir(parents=True)
  (folder / "train.json").write_text(json.dumps(train))
  if valid is not None:
    (folder / "valid.json").write_text(json.dumps(valid))
  return root


@pytest.fixture
def data_root(tmp_path):
  root = _write_root(tmp_path / "data")
  tasks.set_data_root(root)
  yield root
  tasks.set_data_root(None)


def _examples(split="train", lengths=None):
  task = seqio.get_mixture_or_task(CANARY_TASK)
  ds = task.get_dataset(lengths, split=split, shuffle=False)
  vocab = task.output_features["inputs"].vocabulary
  rows = []
  for ex in ds.as_numpy_iterator():
    rows.append(dict(ex, inputs_decoded=vocab.decode(ex["inputs"].tolist()),
                     targets_decoded=vocab.decode(ex["targets"].tolist())))
  return rows


def test_features_and_hand_checked_rows(data_root):
  rows = _examples(lengths={"inputs": 512, "targets": 128})
  assert len(rows) == 3
  assert set(rows[0]) >= {"inputs", "targets", "inputs_pretokenized", "targets_pretokenized", "safety_label"}
  expected_inputs = [
      "User: I skipped my friend's party to play games.",
      "User: I skipped my friend's party to play games. Bot: He might feel hurt that you didn't come. "
      "User: He'll get over it, he has other friends.",
      "User: I skipped my friend's party to play games. Bot: He might feel hurt that you didn't come. "
      "User: He'll get over it, he has other friends. Bot: Maybe, but a quick apology would mean a lot. "
      "User: Fine, I'll take him to lunch.",
  ]
  expected_targets = [
      "__probably_needs_caution__ You should show up for your friends.",
      "__needs_caution__ It's hurtful to dismiss a friend's feelings., You should apologize.",
      "__casual__",
  ]
  for row, inputs, targets in zip(rows, expected_inputs, expected_targets):
    assert row["inputs_pretokenized"].decode() == inputs
    assert row["targets_pretokenized"].decode() == targets
    assert row["inputs_decoded"].strip() == inputs
    assert row["targets_decoded"].strip() == targets
    assert row["inputs"][-1] == 1 and row["targets"][-1] == 1  # EOS
  assert [r["safety_label"].decode() for r in rows] == [
      "__probably_needs_caution__", "__needs_caution__", "__casual__"]
  vocab = seqio.get_mixture_or_task(CANARY_TASK).output_features["targets"].vocabulary
  assert rows[2]["targets"].tolist() == vocab.encode("__casual__") + [1]  # one label token + EOS
  assert rows[1]["targets"][0] == vocab.encode("__needs_caution__")[0]


def test_left_truncation_keeps_the_last_turn(data_root):
  full = _examples(lengths={"inputs": 512, "targets": 128})[2]
  short = _examples(lengths={"inputs": 16, "targets": 6})[2]
  assert len(full["inputs"]) > 16
  assert len(short["inputs"]) == 16 and short["inputs"][-1] == 1
  assert short["inputs"].tolist()[:-1] == full["inputs"].tolist()[-16:-1]  # the tail, then EOS
  assert short["inputs_decoded"].strip().endswith("User: Fine, I'll take him to lunch.")
  assert not short["inputs_decoded"].strip().startswith("User: I skipped")
  # Targets are cut from the right (the label stays first), inputs_pretokenized stays whole.
  assert short["inputs_pretokenized"] == full["inputs_pretokenized"]
  long_target = _examples(lengths={"inputs": 16, "targets": 4})[1]
  assert len(long_target["targets"]) == 4 and long_target["targets_decoded"].startswith("__needs_caution__")


def test_no_sequence_length_keeps_everything(data_root):
  rows = _examples(lengths=None)
  assert rows[2]["inputs_decoded"].strip() == rows[2]["inputs_pretokenized"].decode()


def test_left_truncate_preprocessor_directly():
  vocab = seqio.PassThroughVocabulary(size=100)
  features = {"inputs": seqio.Feature(vocab, add_eos=True), "targets": seqio.Feature(vocab, add_eos=False)}
  ds = tf.data.Dataset.from_tensors({"inputs": tf.range(2, 12), "targets": tf.range(2, 12)})
  out = next(iter(preprocessors.left_truncate(ds, features, {"inputs": 4, "targets": 3},
                                              keys=("inputs", "targets"))))
  assert out["inputs"].numpy().tolist() == [9, 10, 11]  # 4 - 1 for EOS
  assert out["targets"].numpy().tolist() == [9, 10, 11]  # no EOS -> all 3
  same = next(iter(preprocessors.left_truncate(ds, features, None)))
  assert same["inputs"].numpy().tolist() == list(range(2, 12))


def test_data_root_is_read_when_the_dataset_is_built(tmp_path):
  other = [[_turn("Another dialogue entirely.", "Sure.", "__needs_intervention__", ["It's wrong."], done=True)]]
  _write_root(tmp_path / "a")
  _write_root(tmp_path / "b", train=other)
  try:
    tasks.set_data_root(tmp_path / "a")
    assert len(_examples()) == 3
    tasks.set_data_root(tmp_path / "b")
    rows = _examples()
    assert [r["targets_pretokenized"].decode() for r in rows] == ["__needs_intervention__ It's wrong."]
  finally:
    tasks.set_data_root(None)


def test_env_var_is_the_fallback(tmp_path, monkeypatch):
  _write_root(tmp_path / "env")
  monkeypatch.setenv("PROSOCIAL_JAX_DATA", str(tmp_path / "env"))
  tasks.set_data_root(None)
  assert tasks.get_data_root() == str(tmp_path / "env")
  assert len(_examples()) == 3


def test_missing_corpus_and_missing_test_split(tmp_path, data_root):
  with pytest.raises(MissingDataError, match=r"No 'test' split file"):
    _examples(split="test")
  tasks.set_data_root(tmp_path / "empty")
  with pytest.raises(MissingDataError, match="python -m prosocial_jax.data download prosocial_dialog"):
    _examples(split="train")


def test_postprocessor_and_metrics_are_wired():
  task = seqio.get_mixture_or_task(CANARY_TASK)
  assert preprocessors.canary_postprocessor(b" __casual__ \n") == "__casual__"
  assert preprocessors.canary_postprocessor(" x ", example={}, is_target=True) == "x"
  assert [f.__name__ for f in task.predict_metric_fns] == [
      "safety_accuracy", "safety_three_way", "safety_confusion", "rot_generation"]
  assert [f.__name__ for f in task.score_metric_fns] == ["perplexity"]
  assert task.source.splits == ("train", "validation", "test")
