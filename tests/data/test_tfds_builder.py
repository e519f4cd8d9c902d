"""The `prosocial_dialog` TFDS builder: built offline from a manual folder (either format)
and through its download step (pointed at a local HTTP server)."""

import functools
import http.server
import json
import threading

import pytest
import tensorflow_datasets as tfds

from prosocial_jax.data.labels import SAFETY_LABELS
from prosocial_jax.data.tfds_builder import ProsocialDialog


def _row(d, r, context, response, label, rots, done):
  return {"context": context, "response": response, "rots": rots, "safety_label": label,
          "safety_annotations": ["casual"] * 3, "safety_annotation_reasons": ["a", "b", "c"],
          "source": "sbic", "etc": None, "dialogue_id": d, "response_id": r, "episode_done": done}


ROWS = [_row(0, 0, "I cheated on my test.", "That's not fair to others.", "__needs_caution__",
             ["It's wrong to cheat."], False),
        _row(0, 1, "Everyone does it.", "That doesn't make it right.", "__probably_needs_caution__",
             ["You should be honest."], True)]
JSONL = "\n".join(json.dumps(r) for r in ROWS) + "\n"


def _examples(builder, split):
  return sorted(tfds.as_numpy(builder.as_dataset(split=split)), key=lambda e: e["response_id"])


def _check(builder):
  rows = _examples(builder, "train")
  assert len(rows) == 2
  assert [h.decode() for h in rows[1]["history"]] == ["I cheated on my test.", "That's not fair to others."]
  assert rows[1]["context"].decode() == "Everyone does it."
  assert SAFETY_LABELS[rows[1]["safety_label"]] == "__probably_needs_caution__"
  assert [r.decode() for r in rows[0]["rots"]] == ["It's wrong to cheat."]
  assert rows[0]["etc"] == b"" and bool(rows[1]["episode_done"])
  assert builder.info.splits["validation"].num_examples == 2


def test_builds_from_a_manual_folder(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  for name in ("train.json", "valid.json", "test.json"):
    (manual / name).write_text(JSONL)
  builder = ProsocialDialog(data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  _check(builder)


class _Quiet(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args):
    pass


def test_download_step_fetches_the_hugging_face_files(tmp_path, monkeypatch):
  served = tmp_path / "hf"
  served.mkdir()
  for name in ("train.json", "valid.json", "test.json"):
    (served / name).write_text(JSONL)
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
  threading.Thread(target=httpd.serve_forever, daemon=True).start()
  try:
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setattr(ProsocialDialog, "URLS", {"train": f"{base}/train.json",
                                                  "validation": f"{base}/valid.json",
                                                  "test": f"{base}/test.json"})
    builder = ProsocialDialog(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "no_manual_files")))
    _check(builder)
  finally:
    httpd.shutdown()
    httpd.server_close()


def test_urls_come_from_the_release_table():
  assert ProsocialDialog.URLS["validation"].endswith("allenai/prosocial-dialog/resolve/main/valid.json")
