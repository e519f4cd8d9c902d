"""`python -m prosocial_jax.infer` end to end on a tiny Canary: predict and score, bad lines
reported by number (skipped or stopping the run), output written whole or not at all."""

import json
import os
import subprocess
import sys

import pytest

from prosocial_jax import infer
from prosocial_jax.inference import Canary
from prosocial_jax.inference.tools import Seq2SeqTool

from .inference.tiny_runs import tiny_canary, validation_turns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("canary") / "run"
  tiny_canary(directory, steps=3, eval_at_end=False)
  return directory


@pytest.fixture(scope="module")
def canary(model_dir):
  return Canary.from_pretrained(str(model_dir))


def _write(path, lines):
  path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                          for line in lines))
  return path


def _read(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def _main(*args):
  """`infer.main` in this process; returns its exit status (0 when it returns)."""
  try:
    infer.main([str(a) for a in args])
  except SystemExit as stop:
    return stop.code
  return 0


def _partials(folder):
  return [name for name in os.listdir(folder) if ".partial" in name]


def test_predict_end_to_end(model_dir, canary, tmp_path):
  histories = [history for history, _ in validation_turns()[:9]]
  lines = [{"context": h, "id": i} for i, h in enumerate(histories)]
  lines[0] = {"context": "I took credit for my coworker's idea.", "id": 0}   # one utterance
  source, output = _write(tmp_path / "in.jsonl", lines), tmp_path / "out" / "predictions.jsonl"
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  result = subprocess.run(
      [sys.executable, "-m", "prosocial_jax.infer", f"--model_dir={model_dir}",
       f"--input={source}", f"--output={output}", "--batch_size=4"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Wrote 9 lines to {output} (Canary, predict)." in result.stdout
  assert "infer: 9/9 lines" in result.stderr   # the progress line
  rows = _read(output)
  expected = canary.chirp([line["context"] for line in lines])
  assert [row["id"] for row in rows] == list(range(9))
  for row, line, out in zip(rows, lines, expected):
    assert row["context"] == line["context"]
    assert row["inputs"] == out.inputs == canary.inputs_text(line["context"])
    assert (row["prediction"], row["safety_label"], row["rots"]) == (
        out.prediction, out.safety_label, out.rots)
  assert rows[0]["inputs"] == "User: I took credit for my coworker's idea."
  assert _partials(output.parent) == []


def test_score_mode_gives_the_models_log_likelihoods(model_dir, canary, tmp_path):
  turns = validation_turns()[:5]
  lines = [{"context": h, "target": f"{t.safety_label} {', '.join(t.rots)}".strip()}
           for h, t in turns]
  source, output = _write(tmp_path / "in.jsonl", lines), tmp_path / "scores.jsonl"
  assert _main(f"--model_dir={model_dir}", f"--input={source}", f"--output={output}",
               "--mode=score") == 0
  rows = _read(output)
  scores = canary.score([canary.inputs_text(line["context"]) for line in lines],
                        [line["target"] for line in lines])
  assert [r["log_likelihood"] for r in rows] == [s.log_likelihood for s in scores]
  assert [r["num_target_tokens"] for r in rows] == [s.num_target_tokens for s in scores]
  assert all(r["log_likelihood"] < 0 and r["num_target_tokens"] > 1 for r in rows)


BAD = [
    {"context": "Fine."},
    "{not json",
    {"text": "no context"},
    {"context": 7},
    {"context": []},
    {"context": ["a", "b"]},
]


def test_bad_lines_are_skipped_and_counted(model_dir, tmp_path, capsys):
  source, output = _write(tmp_path / "in.jsonl", BAD), tmp_path / "out.jsonl"
  assert _main(f"--model_dir={model_dir}", f"--input={source}", f"--output={output}",
               "--on_error=skip") == 0
  captured = capsys.readouterr()
  assert [row["context"] for row in _read(output)] == ["Fine.", ["a", "b"]]
  assert "skipped 4 bad lines: 2, 3, 4, 5." in captured.out
  assert f"{source} line 2: not JSON" in captured.err
  assert f"{source} line 3: field 'context' is missing" in captured.err
  assert f"{source} line 4: field 'context' must be a string or a list of strings" in captured.err
  assert f"{source} line 5: field 'context': the context is an empty list" in captured.err


def test_a_bad_line_stops_the_run_and_leaves_the_output_alone(model_dir, tmp_path, capsys):
  source, output = _write(tmp_path / "in.jsonl", BAD), tmp_path / "out.jsonl"
  output.write_text("an earlier run's output\n")
  assert _main(f"--model_dir={model_dir}", f"--input={source}", f"--output={output}") == 2
  err = capsys.readouterr().err
  assert f"error: {source} line 2: not JSON" in err and "Traceback" not in err
  assert output.read_text() == "an earlier run's output\n"
  assert _partials(tmp_path) == []
  # score mode needs each line's target
  scored = _write(tmp_path / "score.jsonl", [{"context": "Hi.", "target": "__casual__"},
                                             {"context": "Hi."}])
  assert _main(f"--model_dir={model_dir}", f"--input={scored}", f"--output={output}",
               "--mode=score") == 2
  assert f"{scored} line 2: field 'target' (--mode=score) must be a string; it is missing" in (
      capsys.readouterr().err)


def test_gold_fields_of_an_outputs_name_are_kept_beside_the_predictions(model_dir, canary,
                                                                       tmp_path, capsys):
  gold = {"context": "I took credit for my coworker's idea.", "safety_label": "__needs_caution__",
          "rots": ["It's wrong to take credit for others' work."], "id": 7}
  source, output = _write(tmp_path / "in.jsonl", [gold, {"context": "Hi."}]), tmp_path / "o.jsonl"
  assert _main(f"--model_dir={model_dir}", f"--input={source}", f"--output={output}") == 0
  summary = capsys.readouterr().out
  assert (f"Wrote 2 lines to {output} (Canary, predict); the input's own rots, safety_label "
          "kept as input_rots, input_safety_label.") in summary
  first, second = _read(output)
  predicted = canary.chirp([gold["context"]])[0]
  assert first == {"context": gold["context"], "id": 7, "input_safety_label": "__needs_caution__",
                   "input_rots": gold["rots"], "inputs": predicted.inputs,
                   "prediction": predicted.prediction, "safety_label": predicted.safety_label,
                   "rots": predicted.rots}
  assert "input_rots" not in second  # only lines that had the field
  clash = _write(tmp_path / "clash.jsonl", [{"context": "Hi.", "rots": [], "input_rots": []}])
  assert _main(f"--model_dir={model_dir}", f"--input={clash}", f"--output={output}") == 2
  assert (f"{clash} line 1: fields 'rots' and 'input_rots' are both there, and the output's "
          "'rots' moves the first to the second: rename one") in capsys.readouterr().err


def test_a_failure_mid_run_leaves_no_partial_output(model_dir, tmp_path, monkeypatch):
  source, output = _write(tmp_path / "in.jsonl", BAD[:1] * 3), tmp_path / "out.jsonl"
  output.write_text("kept\n")

  def broken(self, texts, **kwargs):
    kwargs["progress"](1)
    raise KeyboardInterrupt

  monkeypatch.setattr(Seq2SeqTool, "predict", broken)
  with pytest.raises(KeyboardInterrupt):
    infer.main([f"--model_dir={model_dir}", f"--input={source}", f"--output={output}"])
  assert output.read_text() == "kept\n" and _partials(tmp_path) == []

  def failing_lines():
    yield "one"
    raise OSError("disk full")

  with pytest.raises(OSError):
    infer.write_atomically(str(output), failing_lines())
  assert output.read_text() == "kept\n" and _partials(tmp_path) == []


def test_errors_exit_2_with_a_message(model_dir, tmp_path, capsys):
  source = _write(tmp_path / "in.jsonl", BAD[:1])
  assert _main(f"--model_dir={tmp_path / 'nowhere'}", f"--input={source}",
               f"--output={tmp_path / 'out.jsonl'}") == 2
  assert "does not exist" in capsys.readouterr().err
  assert _main(f"--model_dir={model_dir}", f"--input={tmp_path / 'missing.jsonl'}",
               f"--output={tmp_path / 'out.jsonl'}") == 2
  assert "missing.jsonl does not exist" in capsys.readouterr().err
  assert _main(f"--model_dir={model_dir}", f"--input={source}",
               f"--output={tmp_path / 'out.jsonl'}", "--with_rots") == 2
  assert "the model in --model_dir is Canary" in capsys.readouterr().err
  # A decoding flag the chosen method ignores is a mistake, not a silent no-op.
  for flags, said in ((["--decode=beam", "--top_k=5", "--top_p=0.9"],
                       "--top_k, --top_p only apply to --decode=sample (this run decodes with "
                       "--decode=beam)"),
                      (["--beam_size=2"], "--beam_size only applies to --decode=beam (this run "
                                          "decodes with --decode=greedy)")):
    assert _main(f"--model_dir={model_dir}", f"--input={source}",
                 f"--output={tmp_path / 'out.jsonl'}", *flags) == 2
    assert said in capsys.readouterr().err
  assert not (tmp_path / "out.jsonl").exists()
