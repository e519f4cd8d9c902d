"""Canary and Prost as Python objects, on tiny runs trained on the shipped sample: the
inputs are the SeqIO tasks' own ids, the outputs the trainer's own evaluation, from a
MODEL_DIR and from its exported Hugging Face folder alike."""

import dataclasses
import json

import jax
import numpy as np
import pytest
import seqio
import tensorflow as tf

import tasks
from prosocial_jax import infer
from prosocial_jax.data.data_root import sample_data_root
from prosocial_jax.eval import evaluate_checkpoint
from prosocial_jax.checkpoints.exporters import RUN_KEY, export_checkpoint
from prosocial_jax.inference import Canary, DecodeOptions, Prost
from prosocial_jax.inference.pretrained import PretrainedError, load_pretrained
from prosocial_jax.inference.tools import CanaryOutput, ProstOutput, open_tool
from prosocial_jax.models import attention, prost_config

from .tiny_runs import (LENGTHS, SMALL, task_examples, tiny_canary, tiny_prost, train_tiny,
                        validation_turns)

STEPS = 10


@pytest.fixture(scope="module")
def canary_dir(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("canary") / "run"
  tiny_canary(model_dir, steps=STEPS, eval_at_end=True)
  return model_dir


@pytest.fixture(scope="module")
def canary(canary_dir):
  return Canary.from_pretrained(str(canary_dir))


@pytest.fixture(scope="module")
def evaluation_rows(canary_dir):
  """What the trainer's SeqIO evaluation wrote for each validation example."""
  path = canary_dir / "inference_eval" / f"prosocial_dialog_canary-{STEPS:06d}.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_run_is_read_with_its_task_and_lengths(canary, canary_dir):
  assert canary.feature_lengths == LENGTHS
  assert canary.pretrained.task == "prosocial_dialog_canary"
  assert canary.pretrained.step == STEPS
  assert isinstance(open_tool(str(canary_dir)), Canary)


def test_inputs_are_the_tasks_ids_for_the_same_dialogues(canary):
  examples = task_examples("prosocial_dialog_canary")
  turns = validation_turns()
  assert len(turns) == len(examples) == 30
  truncated = 0
  for (history, _), example in zip(turns, examples):
    text = canary.inputs_text(history)   # a list of utterances, as a user passes it
    assert text == example["inputs_pretokenized"]
    assert canary.input_ids(text) == example["inputs"]
    assert canary.inputs_text(text) == text   # a formatted context passes unchanged
    truncated += len(canary.vocabulary.encode(text)) >= LENGTHS["inputs"]
  assert truncated >= 5   # long contexts were cut from the left, as the task cuts them


def test_chirp_predicts_what_the_evaluation_wrote(canary, evaluation_rows):
  contexts = [row["input"]["inputs_pretokenized"] for row in evaluation_rows]
  outputs = canary.chirp(contexts)
  assert len(outputs) == len(evaluation_rows) == 30
  for output, row in zip(outputs, evaluation_rows):
    assert isinstance(output, CanaryOutput)
    assert output.prediction == row["prediction"]
    parsed = seqio.get_mixture_or_task("prosocial_dialog_canary").postprocess_fn(row["output"])
    assert (output.safety_label, output.rots) == (parsed.label, parsed.rots)
    assert output.inputs == row["input"]["inputs_pretokenized"]
  # A lone string is one context; the batch size does not change a row's output.
  small = Canary(canary.pretrained, batch_size=3)
  assert small.chirp(contexts[4]) == [outputs[4]]
  assert small.chirp(contexts[:7]) == outputs[:7]


def test_scores_are_the_evaluations_and_score_batchs(canary, evaluation_rows):
  texts = [row["input"]["inputs_pretokenized"] for row in evaluation_rows]
  targets = [row["target"] for row in evaluation_rows]
  scores = canary.score(texts, targets)
  # The evaluation scored on an 8-device mesh: the same numbers up to float rounding.
  np.testing.assert_allclose([s.log_likelihood for s in scores],
                             [row["score"][0] for row in evaluation_rows], rtol=1e-5)
  assert [s.num_target_tokens for s in scores] == [int(row["score"][1]) for row in evaluation_rows]
  # score_batch itself on the batch SeqIO's feature converter makes of the task's examples.
  examples = task_examples("prosocial_dialog_canary")
  assert [e["inputs_pretokenized"] for e in examples] == texts
  converted = seqio.EncDecFeatureConverter(pack=False)(_as_dataset(examples), LENGTHS)
  rows = list(converted.as_numpy_iterator())
  batch = {k: np.stack([r[k] for r in rows[:8]]) for k in rows[0]}
  log_likelihood, counts = jax.jit(canary.model.score_batch)(canary.pretrained.params, batch)
  np.testing.assert_allclose([s.log_likelihood for s in scores[:8]], log_likelihood, rtol=1e-6)
  assert [s.num_target_tokens for s in scores[:8]] == np.asarray(counts).astype(int).tolist()


def _as_dataset(examples):
  return tf.data.Dataset.from_generator(
      lambda: ({"inputs": e["inputs"], "targets": e["targets"]} for e in examples),
      output_signature={"inputs": tf.TensorSpec([None], tf.int32),
                        "targets": tf.TensorSpec([None], tf.int32)})


def test_the_exported_folder_gives_the_same_outputs(canary, canary_dir, tmp_path):
  folder = tmp_path / "hf"
  export_checkpoint(str(canary_dir), str(folder))
  record = json.loads((folder / "config.json").read_text())[RUN_KEY]
  assert record == {"mixture_or_task_name": "prosocial_dialog_canary",
                    "task_feature_lengths": LENGTHS, "step": STEPS}
  exported = Canary.from_pretrained(str(folder))
  assert exported.feature_lengths == canary.feature_lengths
  assert exported.vocabulary.vocab_size == canary.vocabulary.vocab_size
  histories = [history for history, _ in validation_turns()]
  assert exported.chirp(histories) == canary.chirp(histories)
  texts = [canary.inputs_text(h) for h in histories]
  assert exported.score(texts, ["__casual__"] * len(texts)) == canary.score(
      texts, ["__casual__"] * len(texts))
  with pytest.raises(PretrainedError, match="applies to a MODEL_DIR only"):
    load_pretrained(str(folder), step="best")
  # `eval` takes a checkpoint: for the folder it says how to make one, and the converted
  # checkpoint keeps the export's task and lengths, so nothing needs to be passed again.
  from prosocial_jax.checkpoints.importers import import_checkpoint, writer
  from prosocial_jax.eval import EvalError
  with pytest.raises(EvalError, match=r"It is a Hugging Face folder \(an export\?\): convert it "
                                      rf"into a checkpoint first, .* --source={folder} "):
    evaluate_checkpoint(str(folder))
  meta = writer.write_checkpoint(import_checkpoint(str(folder)), str(tmp_path / "converted"))
  assert meta["trained_on"] == record
  converted = load_pretrained(str(tmp_path / "converted"))
  assert (converted.task, converted.feature_lengths) == ("prosocial_dialog_canary", LENGTHS)


def test_beam_search_and_repeatable_sampling(canary):
  histories = [history for history, _ in validation_turns()[:5]]
  beams = canary.chirp(histories, decode=DecodeOptions("beam", beam_size=3))
  assert len(beams) == 5 and all(isinstance(b, CanaryOutput) for b in beams)
  sample = DecodeOptions("sample", temperature=1.0, top_k=20)
  first = Canary(canary.pretrained, decode=sample, seed=3).chirp(histories)
  again = Canary(canary.pretrained, decode=sample, seed=3).chirp(histories)
  other = Canary(canary.pretrained, decode=sample, seed=4).chirp(histories)
  assert first == again and first != other


def test_a_missing_model_is_an_error_naming_it(tmp_path):
  with pytest.raises(PretrainedError, match="does not exist"):
    Canary.from_pretrained(str(tmp_path / "nowhere"))


@pytest.fixture(scope="module")
def prost_dir(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("prost") / "run"
  tiny_prost(model_dir, steps=2)
  return model_dir


@pytest.fixture(scope="module")
def prost(prost_dir):
  tool = open_tool(str(prost_dir))
  assert isinstance(tool, Prost)
  return tool


def test_prost_responds_and_takes_gold_rots_in_the_tasks_format(prost):
  turns = [(history, turn) for history, turn in validation_turns() if turn.response]
  history, turn = turns[1]
  response = prost.respond(history)
  assert isinstance(response, str)
  assert prost.respond(history, rots=list(turn.rots)) == prost.generate(
      [history], [turn.rots])[0].response
  outputs = prost.generate([h for h, _ in turns[:3]])
  assert all(isinstance(o, ProstOutput) for o in outputs)
  # RoTs given: exactly the inputs of task prosocial_dialog_prost_gold_rot.
  examples = task_examples("prosocial_dialog_prost_gold_rot")
  assert len(examples) == len(turns)
  for (history, turn), example in zip(turns, examples):
    text = prost.inputs_text(history, rots=list(turn.rots))
    assert text == example["inputs_pretokenized"]
    assert prost.input_ids(text) == example["inputs"]
  assert " RoT: " in examples[0]["inputs_pretokenized"]
  # Without RoTs: the inputs of the RoT & response task it trained on.
  plain = task_examples("prosocial_dialog_prost_rot_response")
  assert [prost.inputs_text(h) for h, _ in turns] == [e["inputs_pretokenized"] for e in plain]


def test_canary_and_prost_refuse_each_others_models(canary_dir, prost_dir):
  with pytest.raises(PretrainedError, match=rf"^{prost_dir} is not a Canary model \(its task: "
                                            r"prosocial_dialog_prost_\w+\)\.$"):
    Canary.from_pretrained(str(prost_dir))
  with pytest.raises(PretrainedError, match=rf"^{canary_dir} is not a Prost model \(its task: "
                                            r"prosocial_dialog_canary\)\.$"):
    Prost.from_pretrained(str(canary_dir))


def test_prost_parses_rots_and_response():
  parsed = Prost.parse("RoT: It's rude to lie., You should be honest. Response: Please tell her.")
  assert parsed.rots == ["It's rude to lie.", "You should be honest."]
  assert parsed.response == "Please tell her."
  assert Prost.parse("Sounds fun!").response == "Sounds fun!"


def test_the_cli_gives_prost_the_lines_rots(prost, prost_dir, tmp_path):
  turns = [(history, turn) for history, turn in validation_turns() if turn.rots][:3]
  source = tmp_path / "in.jsonl"
  source.write_text("".join(json.dumps({"context": h, "rots": list(t.rots)}) + "\n"
                            for h, t in turns))
  output = tmp_path / "out.jsonl"
  infer.main([f"--model_dir={prost_dir}", f"--input={source}", f"--output={output}",
              "--with_rots"])
  rows = [json.loads(line) for line in output.read_text().splitlines()]
  expected = prost.generate([h for h, _ in turns], [t.rots for _, t in turns])
  assert [r["inputs"] for r in rows] == [o.inputs for o in expected]
  assert all(" RoT: " in r["inputs"] for r in rows)
  assert [(r["prediction"], r["response"]) for r in rows] == [
      (o.prediction, o.response) for o in expected]


def test_prost_from_its_exported_folder(prost, prost_dir, tmp_path):
  export_checkpoint(str(prost_dir), str(tmp_path / "hf"))
  exported = open_tool(str(tmp_path / "hf"))
  assert isinstance(exported, Prost) and exported.feature_lengths == LENGTHS
  histories = [history for history, _ in validation_turns()[:4]]
  assert exported.generate(histories) == prost.generate(histories)


def test_a_run_trained_on_cudnn_attention_responds_on_a_cpu(tmp_path, monkeypatch):
  # Trained through XLA's reference behind the cuDNN call (no GPU here); then opened as a
  # user on a CPU would, where cuDNN cannot run: the same model, on the 'xla' kernel.
  monkeypatch.setattr(attention, "FUSED_IMPLEMENTATION", "xla")
  config = prost_config("tiny", num_encoder_layers=1, num_decoder_layers=2, dtype="bfloat16",
                        attention_kernel="cudnn", **SMALL)
  train_tiny(tmp_path / "run", "prosocial_dialog_prost_rot_response", config, steps=2)
  monkeypatch.setattr(attention, "FUSED_IMPLEMENTATION", "cudnn")
  prost = open_tool(str(tmp_path / "run"))
  assert prost.pretrained.config == dataclasses.replace(config, attention_kernel="xla")
  history = validation_turns()[0][0]
  assert isinstance(prost.respond(history), str)
  # `eval` opens it the same way.
  try:
    _, record = evaluate_checkpoint(str(tmp_path / "run"), max_examples=8,
                                    data_root=str(sample_data_root()))
  finally:
    tasks.set_data_root(None)
  task = "prosocial_dialog_prost_rot_response"
  assert record["num_examples"] == 8
  assert np.isfinite(record["metrics"][task]["perplexity"])
