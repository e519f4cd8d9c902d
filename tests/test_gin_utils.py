import pytest

from prosocial_jax import gin_utils


def test_t5x_style_flags_become_gin_bindings():
  files, bindings, search = gin_utils.parse_args(
      ["--gin_file=gin/quickstart.gin", "--gin.MODEL_DIR='runs/x'",
       "--gin.TRAIN_STEPS=7", "--gin_bindings=SEED = 3", "--gin_search_paths=a,b"],
      entry="train")
  assert files == ["gin/quickstart.gin"]
  assert bindings == ["SEED = 3", "MODEL_DIR = 'runs/x'", "TRAIN_STEPS = 7"]
  assert search == ["a", "b"]


def test_missing_gin_file_flag_is_an_error(capsys):
  with pytest.raises(SystemExit):
    gin_utils.parse_args(["--gin.MODEL_DIR='x'"], entry="train")
  assert "at least one --gin_file is required" in capsys.readouterr().err


def test_unknown_flag_is_an_error(capsys):
  with pytest.raises(SystemExit):
    gin_utils.parse_args(["--gin_file=a.gin", "--model_dir=x"], entry="train")
  assert "unrecognised argument '--model_dir=x'" in capsys.readouterr().err


def test_missing_gin_file_names_where_it_looked(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(FileNotFoundError, match="no_such.gin"):
    gin_utils.parse_gin(["no_such.gin"], [])
