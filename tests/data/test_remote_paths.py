"""Data roots that are not local folders (gs:// on TPU VMs) work through tf.io.gfile;
TensorFlow's in-memory `ram://` filesystem stands in for a bucket here."""

import io
import json
import tarfile

import seqio

import tasks
from prosocial_jax.data import corpus, download, synthetic
from prosocial_jax.data.download import Release, Remote


def test_readers_and_tasks_read_a_remote_data_root():
  root = synthetic.write_data_root("ram://remote_root", dialogues=3,
                                   corpora=["prosocial_dialog", "topical_chat", "social_chem_101"])
  assert len(corpus("prosocial_dialog").load_split("validation", root)) == 3
  assert len(corpus("topical_chat").load_split("validation", root).paths) == 2
  assert len(corpus("social_chem_101").load_split("train", root)) > 0
  tasks.set_data_root(root)
  try:
    rows = list(seqio.get_mixture_or_task("prosocial_dialog_canary").get_dataset(
        None, split="validation", shuffle=False).as_numpy_iterator())
    assert len(rows) == sum(len(d.turns) for d in corpus("prosocial_dialog").load_split("validation", root))
  finally:
    tasks.set_data_root(None)


def test_download_into_a_remote_data_root(tmp_path, monkeypatch):
  monkeypatch.setattr(download, "LOCAL_CACHE", str(tmp_path / "cache"))  # resuming needs local files
  line = json.dumps({"dialogue": [{"text": "Hi ."}, {"text": "Hello ."}]}) + "\n"
  archive = io.BytesIO()
  with tarfile.open(fileobj=archive, mode="w:gz") as tar:
    for name in ("train.json", "valid.json", "test.json"):
      info = tarfile.TarInfo(name)
      info.size = len(line)
      tar.addfile(info, io.BytesIO(line.encode()))
  (tmp_path / "dd.tar.gz").write_bytes(archive.getvalue())
  releases = {"daily_dialog": Release("", "", files=(
      Remote(f"file://{tmp_path}/dd.tar.gz", keep=r"^(train|valid|test)\.json$"),))}
  files = download.download("daily_dialog", "ram://bucket", releases=releases, progress_stream=None)
  assert files[0] == "ram://bucket/daily_dialog/test.json"
  assert (tmp_path / "cache" / "daily_dialog" / "dd.tar.gz").exists()
  assert len(corpus("daily_dialog").load_split("train", "ram://bucket")) == 1
