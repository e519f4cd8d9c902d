"""`python -m prosocial_jax.convert` end to end: a tiny Hugging Face T5 becomes one of our
checkpoints that seeds training; refusals exit 2 with a message, not a traceback."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from prosocial_jax.checkpoints.importers import import_checkpoint, writer  # noqa: E402
from prosocial_jax.checkpoints.importers.base import (CheckpointImportError,  # noqa: E402
                                                      expected_param_shapes)
from prosocial_jax.checkpoints.manager import Checkpointer  # noqa: E402
from prosocial_jax.training.initial_checkpoint import load_initial_params  # noqa: E402

from .checkpoints.t5_fixtures import SPIECE, nested, random_t5  # noqa: E402
from .checkpoints.t5_fixtures import save_hf as save  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convert(*args):
  env = {**os.environ, "HF_HUB_OFFLINE": "1", "JAX_PLATFORMS": "cpu"}
  env.pop("PROSOCIAL_JAX_TRACEBACK", None)
  return subprocess.run([sys.executable, "-m", "prosocial_jax.convert", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("hf")
  save(random_t5("1.1", encoder_layers=2, decoder_layers=3), directory)
  shutil.copy(SPIECE, directory / "spiece.model")
  return directory


@pytest.fixture(scope="module")
def converted(hf_dir, tmp_path_factory):
  output = tmp_path_factory.mktemp("ours") / "t5"
  result = convert(f"--source={hf_dir}", f"--output_dir={output}")
  assert result.returncode == 0, result.stderr
  return output, result


def test_the_converted_checkpoint_seeds_a_run_with_the_imported_params(hf_dir, converted):
  output, result = converted
  assert "loaded 66 tensors" in result.stdout and "66/66 tensors" in result.stdout
  assert f"Wrote {output}/checkpoint_0" in result.stdout
  imported = import_checkpoint(str(hf_dir))
  count = sum(int(np.prod(shape)) for shape in expected_param_shapes(imported.config).values())
  assert f"({len(expected_param_shapes(imported.config))} tensors, {count:,} parameters)" in (
      result.stdout)
  # The sample SentencePiece model (1024 ids + T5's 100 extra) on a 64-row test model: said.
  assert (f"warning: the vocabulary's {meta_vocab_size(output)} ids (extra ids included) do "
          "not fit the model's 64 embedding rows") in result.stdout
  expected = expected_param_shapes(imported.config)
  shapes = {name: list(shape) for name, shape in expected.items()}
  target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s, np.float32), nested(expected),
                        is_leaf=lambda x: isinstance(x, tuple))
  params = load_initial_params(str(output), shapes, target)
  theirs = nested(dict(imported.tensors()))
  jax.tree.map(np.testing.assert_array_equal, params, theirs)

  checkpointer = Checkpointer(str(output), max_to_keep=None)
  try:
    meta = checkpointer.read_meta(0)
    jax.tree.map(np.testing.assert_array_equal, checkpointer.restore_params(0, target), theirs)
  finally:
    checkpointer.close()
  assert meta["param_shapes"] == shapes
  assert meta["model_config"]["family"] == "t5"
  assert meta["model_config"]["num_decoder_layers"] == 3
  assert meta["imported_from"] == {"format": "hf_t5", "source": str(hf_dir)}
  assert set(meta["code"]) == {"version", "git_commit", "git_dirty"}
  vocabulary = meta["vocabulary"]
  assert vocabulary["source"] == f"{output}/vocabulary/spiece.model"
  assert os.path.exists(vocabulary["source"])
  assert (vocabulary["kind"], vocabulary["extra_ids"], vocabulary["vocab_size"]) == (
      "sentencepiece", 100, 1024 + 100)
  assert len(vocabulary["sha256"]) == 64


def test_a_non_empty_output_is_refused_unless_overwrite(hf_dir, converted, tmp_path):
  output, _ = converted
  refused = convert(f"--source={hf_dir}", f"--output_dir={output}")
  assert refused.returncode == 2
  assert f"Output folder {output} is not empty (checkpoint_0, vocabulary)" in refused.stderr
  assert "Traceback" not in refused.stderr
  # --overwrite replaces checkpoints, never a folder of other things.
  other = tmp_path / "other"
  other.mkdir()
  (other / "notes.txt").write_text("mine")
  with pytest.raises(CheckpointImportError, match=r"holds other files than checkpoints "
                     r"\(notes\.txt\)"):
    writer.check_output_dir(str(other), overwrite=True)
  writer.check_output_dir(str(output), overwrite=True)


def test_overwrite_replaces_the_checkpoint(hf_dir, tmp_path):
  output = tmp_path / "again"
  (output / "checkpoint_7").mkdir(parents=True)
  result = convert(f"--source={hf_dir}", f"--output_dir={output}", "--overwrite")
  assert result.returncode == 0, result.stderr
  assert sorted(os.listdir(output)) == ["checkpoint_0", "vocabulary"]


def test_bad_sources_and_configs_exit_2_with_a_message(hf_dir, tmp_path):
  missing = convert(f"--source={tmp_path}/nothing", f"--output_dir={tmp_path}/out")
  assert missing.returncode == 2
  assert f"error: Checkpoint {tmp_path}/nothing does not exist." in missing.stderr
  assert "Traceback" not in missing.stderr
  # The shipped tiny T5 v1.1 is another size than the checkpoint: each field named.
  mismatch = convert(f"--source={hf_dir}", f"--output_dir={tmp_path}/out2",
                     "--gin_file=gin/models/t5_1_1/tiny.gin", "--gin.VOCAB_SIZE=64")
  assert mismatch.returncode == 2, mismatch.stderr
  assert "emb_dim: " in mismatch.stderr and "num_decoder_layers: " in mismatch.stderr
  assert "Traceback" not in mismatch.stderr
  assert not os.path.exists(f"{tmp_path}/out2/checkpoint_0")


def test_a_gin_config_of_the_same_model_is_recorded_with_its_run_settings(hf_dir, tmp_path):
  gin_file = tmp_path / "model.gin"
  gin_file.write_text(
      "include 'gin/models/t5_1_1/tiny.gin'\n"
      "VOCAB_SIZE = 64\n"
      "t5_1_1_config.emb_dim = 16\nt5_1_1_config.num_heads = 2\nt5_1_1_config.head_dim = 8\n"
      "t5_1_1_config.mlp_dim = 32\nt5_1_1_config.num_decoder_layers = 3\n"
      "t5_1_1_config.relative_attention_num_buckets = 8\n"
      "t5_1_1_config.relative_attention_max_distance = 20\n")
  result = convert(f"--source={hf_dir}", f"--output_dir={tmp_path}/out", f"--gin_file={gin_file}",
                   "--gin.t5_1_1_config.dtype='bfloat16'", "--format=hf_t5")
  assert result.returncode == 0, result.stderr
  meta = json.loads((tmp_path / "out" / "checkpoint_0" / "meta" / "metadata").read_text())
  assert meta["model_config"]["dtype"] == "bfloat16"
  assert meta["model_config"]["num_decoder_layers"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("seed_from", ["converted", "hugging_face_dir"])
def test_a_training_run_starts_from_the_imported_parameters(tmp_path, seed_from):
  # INITIAL_CHECKPOINT_PATH takes the converted checkpoint, or the Hugging Face folder
  # itself (INITIAL_CHECKPOINT_FORMAT 'auto' detects it and imports on the fly).
  # The sample task's vocabulary has 1024 ids: a converted T5 of that size trains on it.
  from prosocial_jax.data.data_root import sample_data_root
  from prosocial_jax.training.optimizers import adam
  from prosocial_jax.training.trainer import train
  import tasks

  hf = save(random_t5("1.1", vocab=1024, d_model=32), tmp_path / "hf")
  output = tmp_path / "ours"
  if seed_from == "converted":
    result = convert(f"--source={hf}", f"--output_dir={output}")
    assert result.returncode == 0, result.stderr
  else:
    output = hf
  imported = import_checkpoint(hf)
  try:
    run = train(model_dir=str(tmp_path / "run"), mixture_or_task_name="prosocial_dialog_canary",
                task_feature_lengths={"inputs": 32, "targets": 8}, batch_size=8,
                model_config=imported.config, optimizer=adam(learning_rate=0.0),
                data_root=sample_data_root(), train_steps=1, log_every=1, eval_at_end=False,
                initial_checkpoint_path=str(output))
  finally:
    tasks.set_data_root(None)
  assert run.step == 1
  saved = Checkpointer(str(tmp_path / "run"), max_to_keep=None)
  try:
    shapes = expected_param_shapes(imported.config)
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s, np.float32), nested(shapes),
                          is_leaf=lambda x: isinstance(x, tuple))
    params = saved.restore_params(1, target)
  finally:
    saved.close()
  # A zero learning rate: the run's parameters are still the imported ones.
  jax.tree.map(np.testing.assert_array_equal, params, nested(dict(imported.tensors())))


def meta_vocab_size(output):
  checkpointer = Checkpointer(str(output), max_to_keep=None)
  try:
    return checkpointer.read_meta(0)["vocabulary"]["vocab_size"]
  finally:
    checkpointer.close()
