import gin
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


@pytest.mark.parametrize("flag, value", [("MODEL_DIR", "/tmp/run"), ("adam.mu_dtype", "bfloat16")])
def test_an_unquoted_string_is_named_with_its_flag_and_the_quotes_it_needs(capsys, flag, value):
  with pytest.raises(SystemExit) as stop:
    gin_utils.parse_args(["--gin_file=a.gin", f"--gin.{flag}={value}"], entry="train")
  assert stop.value.code == 2
  assert (f"error: --gin.{flag}={value}: gin cannot parse the value '{value}'. A string needs "
          f"quotes inside the flag: --gin.{flag}=\"'{value}'\"") in capsys.readouterr().err
  # References, containers and numbers parse, whatever they name.
  _, bindings, _ = gin_utils.parse_args(
      ["--gin_file=a.gin", "--gin.A=[@x(), %Y]", "--gin.b.c={'inputs': 64}", "--gin.D=1e-3"],
      entry="train")
  assert bindings == ["A = [@x(), %Y]", "b.c = {'inputs': 64}", "D = 1e-3"]


def test_missing_gin_file_names_where_it_looked(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(FileNotFoundError, match="no_such.gin"):
    gin_utils.parse_gin(["no_such.gin"], [])


def test_shipped_configs_resolve_from_any_directory_in_three_spellings(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  shipped = gin_utils.shipped_config_dir()
  assert gin_utils.resolve_gin_file("gin/quickstart.gin") == str(shipped / "quickstart.gin")
  assert gin_utils.resolve_gin_file("quickstart.gin") == str(shipped / "quickstart.gin")
  assert gin_utils.resolve_gin_file("models/t5_1_1/large.gin") == str(
      shipped / "models" / "t5_1_1" / "large.gin")
  assert "runs/train.gin" in gin_utils.shipped_config_names()


def test_own_files_and_search_paths_come_before_shipped_ones(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "quickstart.gin").write_text("# mine\n")
  assert gin_utils.resolve_gin_file("quickstart.gin") == str(tmp_path / "quickstart.gin")
  extra = tmp_path / "extra" / "models" / "t5_1_1"
  extra.mkdir(parents=True)
  (extra / "large.gin").write_text("# my large\n")
  assert gin_utils.resolve_gin_file("models/t5_1_1/large.gin", [str(tmp_path / "extra")]) == \
      str(extra / "large.gin")


def test_an_unknown_file_lists_where_it_looked_and_the_nearest_shipped_names(tmp_path,
                                                                             monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(FileNotFoundError) as error:
    gin_utils.resolve_gin_file("models/t5_1_1/larg.gin", ["my_configs"])
  message = str(error.value)
  assert str(tmp_path / "models/t5_1_1/larg.gin") in message
  assert str(tmp_path / "my_configs/models/t5_1_1/larg.gin") in message
  assert str(gin_utils.shipped_config_dir() / "models/t5_1_1/larg.gin") in message
  assert "Nearest shipped configs: models/t5_1_1/large.gin" in message


def test_includes_of_a_users_own_file_find_the_shipped_configs(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "mine.gin").write_text("include 'gin/models/t5_1_1/small.gin'\n")
  gin.clear_config()
  try:
    gin_utils.parse_gin(["mine.gin"], [])
    assert gin.query_parameter("t5_1_1_config.size") == "small"
  finally:
    gin.clear_config()


def test_a_required_parameter_left_unset_is_named_with_its_flag():
  from prosocial_jax.training import schedules  # noqa: F401  (registers warmup_cosine)
  gin.clear_config()
  try:
    gin.parse_config("warmup_cosine.learning_rate = 1e-3")
    with pytest.raises(RuntimeError) as raised:
      gin.get_configurable("warmup_cosine")()
    explained = gin_utils.missing_bindings(raised.value)
    assert str(explained) == ("gin config: warmup_cosine needs decay_steps, which no binding "
                              "sets: --gin.warmup_cosine.decay_steps=VALUE")
    assert isinstance(explained, gin_utils.GinConfigError)
    assert gin_utils.missing_bindings(RuntimeError("something else")) is None
  finally:
    gin.clear_config()
