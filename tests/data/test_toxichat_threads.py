"""ToxiChat threads as `python -m prosocial_jax.infer` input, and (on the real release in
../shared/data/toxichat, wherever it is: about 20 s) a model's responses to them written
for scoring."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from prosocial_jax.data import synthetic
from prosocial_jax.data.__main__ import main
from prosocial_jax.data.toxichat import CORPUS

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = (ROOT / ".." / "shared" / "data").resolve()


def _read(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_thread_becomes_one_input_line_with_its_labels(tmp_path, capsys):
  root = synthetic.write_data_root(str(tmp_path / "data"), dialogues=6)
  output = tmp_path / "threads.jsonl"
  assert main(["toxichat-threads", "test", "--output", str(output), "--data_root", root]) == 0
  threads = CORPUS.load_split("test", root)
  records = _read(output)
  assert len(records) == len(threads) > 0
  for record, thread in zip(records, threads):
    assert record["thread"] == thread.index
    assert record["context"] == [turn.text.strip() for turn in thread.turns]
    assert record["offense_labels"] == [turn.offense_label for turn in thread.turns]
    assert record["dgpt_response"] == thread.replies["dgpt"].text.strip()
    assert record["gpt3_offense_label"] == thread.replies["gpt3"].offense_label
  assert f"{len(records)} ToxiChat test threads" in capsys.readouterr().out


@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED / "toxichat").is_dir(), reason=f"{SHARED / 'toxichat'} is absent")
def test_a_model_responds_to_the_real_threads(tmp_path):
  from ..inference.tiny_runs import tiny_canary  # trains: imported only where it runs
  threads = tmp_path / "threads.jsonl"
  assert main(["toxichat-threads", "test", "--output", str(threads),
               "--data_root", str(SHARED)]) == 0
  records = _read(threads)
  assert len(records) == 300  # SOURCE.md: the release's 300 test threads
  first = tmp_path / "first.jsonl"
  first.write_text("".join(json.dumps(r) + "\n" for r in records[:16]))
  tiny_canary(tmp_path / "canary", steps=3, eval_at_end=False)
  responses = tmp_path / "responses.jsonl"
  result = subprocess.run([sys.executable, "-m", "prosocial_jax.infer",
                           f"--model_dir={tmp_path / 'canary'}", f"--input={first}",
                           f"--output={responses}", "--batch_size=8"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert result.returncode == 0, result.stderr[-2000:]
  written = _read(responses)
  assert [w["thread"] for w in written] == [r["thread"] for r in records[:16]]
  assert all("prediction" in w and "safety_label" in w and "offense_labels" in w
             for w in written)
