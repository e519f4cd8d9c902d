"""`python -m prosocial_jax.export` end to end: one of our checkpoints becomes a Hugging
Face folder; bad input exits 2 with a message, never a traceback, and leaves what is
already on disk alone."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from flax import traverse_util  # noqa: E402

from prosocial_jax.checkpoints import exporters  # noqa: E402
from prosocial_jax.checkpoints.exporters import ExportError  # noqa: E402
from prosocial_jax.checkpoints.manager import Checkpointer  # noqa: E402
from prosocial_jax.models import registry  # noqa: E402

from .checkpoints.test_export_hf_t5 import our_config, random_params, write_ours  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = (0, 5)


def export(*args):
  env = {**os.environ, "HF_HUB_OFFLINE": "1", "JAX_PLATFORMS": "cpu"}
  env.pop("PROSOCIAL_JAX_TRACEBACK", None)
  return subprocess.run([sys.executable, "-m", "prosocial_jax.export", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A tiny T5 v1.1 run with checkpoints at steps 0 and 5 (step 5's embedding + 1, so an
  export shows which step it read); returns (MODEL_DIR, {step: embedding})."""
  config = our_config("1.1", 2, 3)
  flat = random_params(config)
  directory = write_ours(tmp_path_factory.mktemp("run") / "model", config, flat)
  later = {name: array + 1.0 if name == "token_embedder/embedding" else array
           for name, array in flat.items()}
  checkpointer = Checkpointer(directory, max_to_keep=None, async_save=False)
  try:  # a later step as training saves it: the same meta, other parameters
    meta = checkpointer.read_meta(STEPS[0])
    params = jax.tree.map(jax.numpy.asarray, traverse_util.unflatten_dict(later, sep="/"))
    checkpointer.save(STEPS[1], {"params": params}, meta)
  finally:
    checkpointer.close()
  return directory, {STEPS[0]: flat["token_embedder/embedding"],
                     STEPS[1]: later["token_embedder/embedding"]}


def refused(result):
  assert result.returncode == 2, (result.stdout, result.stderr)
  assert "Traceback" not in result.stderr
  return result.stderr


def test_the_latest_step_is_exported_and_the_files_printed(model_dir, tmp_path):
  directory, embeddings = model_dir
  output = tmp_path / "hf"
  result = export(f"--model_dir={directory}", f"--output_dir={output}")
  assert result.returncode == 0, result.stderr
  files = sorted(os.listdir(output))
  assert f"Exported step 5 to {output}: {', '.join(files)}" in result.stdout
  assert {"config.json", "generation_config.json", "model.safetensors"} <= set(files)
  assert "Wrote 66 tensors" in result.stdout  # a v1.1 with 2 + 3 layers, lm_head included
  weights = safetensors_numpy.load_file(str(output / "model.safetensors"))
  np.testing.assert_array_equal(weights["shared.weight"], embeddings[5])
  assert json.loads((output / "config.json").read_text())["num_decoder_layers"] == 3


def test_a_step_and_a_shard_size_are_taken(model_dir, tmp_path):
  directory, embeddings = model_dir
  output = tmp_path / "hf"
  result = export(f"--model_dir={directory}", f"--output_dir={output}", "--step=0",
                  "--max_shard_size=20KB")
  assert result.returncode == 0, result.stderr
  shards = sorted(n for n in os.listdir(output) if n.startswith("model-"))
  assert len(shards) > 1 and not (output / "model.safetensors").exists()
  assert f"Exported step 0 to {output}: " in result.stdout
  assert "model.safetensors.index.json" in result.stdout
  weights = {}
  for shard in shards:
    weights.update(safetensors_numpy.load_file(str(output / shard)))
  np.testing.assert_array_equal(weights["shared.weight"], embeddings[0])


def test_a_missing_or_empty_model_dir_exits_2(tmp_path):
  missing = refused(export(f"--model_dir={tmp_path}/nothing", f"--output_dir={tmp_path}/out"))
  assert f"error: MODEL_DIR {tmp_path}/nothing does not exist." in missing
  (tmp_path / "empty").mkdir()
  empty = refused(export(f"--model_dir={tmp_path}/empty", f"--output_dir={tmp_path}/out"))
  assert f"error: {tmp_path}/empty holds no complete checkpoint_<step> folder." in empty
  # A step folder without its items (a copy that stopped half way) is not complete either.
  (tmp_path / "partial" / "checkpoint_3").mkdir(parents=True)
  partial = refused(export(f"--model_dir={tmp_path}/partial", f"--output_dir={tmp_path}/out"))
  assert ("holds no complete checkpoint_<step> folder (incomplete, without state/ or meta/: "
          "checkpoint_3)") in partial
  assert not (tmp_path / "out").exists()


def test_an_absent_step_exits_2_listing_the_steps(model_dir, tmp_path):
  directory, _ = model_dir
  message = refused(export(f"--model_dir={directory}", f"--output_dir={tmp_path}/out",
                           "--step=7"))
  assert f"error: {directory} has no complete checkpoint at step 7; it has steps 0, 5." in message
  bad_size = refused(export(f"--model_dir={directory}", f"--output_dir={tmp_path}/out",
                            "--max_shard_size=huge"))
  assert "not a size: 'huge'" in bad_size
  assert not (tmp_path / "out").exists()


def test_a_non_empty_output_is_left_alone_unless_overwrite(model_dir, tmp_path):
  directory, _ = model_dir
  output = tmp_path / "taken"
  output.mkdir()
  (output / "notes.txt").write_text("mine")
  message = refused(export(f"--model_dir={directory}", f"--output_dir={output}"))
  assert (f"error: Output folder {output} is not empty (notes.txt); choose another, or "
          "--overwrite.") in message
  assert os.listdir(output) == ["notes.txt"]
  assert (output / "notes.txt").read_text() == "mine"

  result = export(f"--model_dir={directory}", f"--output_dir={output}", "--overwrite")
  assert result.returncode == 0, result.stderr
  assert not (output / "notes.txt").exists()
  assert (output / "config.json").exists() and (output / "model.safetensors").exists()


def test_a_family_without_a_hugging_face_counterpart_is_refused_by_name(
    model_dir, tmp_path, monkeypatch):
  @dataclasses.dataclass(frozen=True)
  class ToyConfig:  # a model family the registry knows and the exporters do not
    width: int = 4

    def to_dict(self):
      return {"width": self.width}

  monkeypatch.setitem(registry._FAMILIES, "toy", (ToyConfig, None))
  with pytest.raises(ExportError, match=r"Model family 'toy' has no Hugging Face counterpart "
                     r"here; exportable: \['prost', 't5'\]\."):
    exporters.family_module(ToyConfig())
  assert exporters.family_module(our_config("1.0", 1, 1)).__name__ == (
      "prosocial_jax.checkpoints.exporters.hf_t5")

  # The refusal comes before anything is written: a real checkpoint, its family unlisted.
  directory, _ = model_dir
  monkeypatch.delitem(exporters.FAMILIES, "t5")
  output = tmp_path / "out"
  with pytest.raises(ExportError, match=r"Model family 't5' has no Hugging Face counterpart "
                     r"here; exportable: \['prost'\]\."):
    exporters.export_checkpoint(directory, str(output))
  assert not output.exists()
