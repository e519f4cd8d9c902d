"""Every gin file under gin/ parses, with the macros it leaves to the user filled in, into
bindings of `train` that resolve; and the paper's recipes say the paper's numbers.

The files are found by glob, so a new one is covered without editing this test. Which
macros a file leaves to the user is found by trying: gin's finalize step names one
`%gin.REQUIRED` (or undefined) macro at a time, and FILLS gives each a small value.
"""

import copy
import inspect
import math
import pathlib
import re

import gin
import pytest
import seqio

from prosocial_jax import gin_utils
from prosocial_jax import models  # noqa: F401  (registers the model configurables)
from prosocial_jax.models import ProstConfig, T5Config
from prosocial_jax.training import trainer
from prosocial_jax.training.optimizers import Optimizer
from prosocial_jax.training.schedules import ReduceOnPlateau

ROOT = pathlib.Path(__file__).resolve().parents[1]
GIN_FILES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "gin").rglob("*.gin"))

# What a user would set, for each macro a file may leave open: small values that resolve
# offline (nothing here is run, so MODEL_DIR is never created).
FILLS = {
    "MODEL_DIR": ["MODEL_DIR = '/nonexistent/prosocial_jax_gin_configs_test'"],
    "MIXTURE_OR_TASK_NAME": ["MIXTURE_OR_TASK_NAME = 'prosocial_dialog_canary'"],
    "TASK_FEATURE_LENGTHS": ["TASK_FEATURE_LENGTHS = {'inputs': 64, 'targets': 32}"],
    "TRAIN_STEPS": ["TRAIN_STEPS = 10"],
    "BATCH_SIZE": ["BATCH_SIZE = 8"],
    "OPTIMIZER": ["OPTIMIZER = @adam()", "adam.learning_rate = 1e-3"],
    "MODEL_CONFIG": ["MODEL_CONFIG = @t5_1_1_config()", "t5_1_1_config.size = 'tiny'",
                     "t5_1_1_config.vocab_size = 1024"],
    "INITIAL_CHECKPOINT_PATH": ["INITIAL_CHECKPOINT_PATH = None"],
    "VOCABULARY": ["VOCABULARY = None"],
}
# gin's finalize errors for a macro left `%gin.REQUIRED`, and for one never defined.
_OPEN_MACRO = (re.compile(r"(\w+)/macro\.value set to `%gin\.REQUIRED`"),
               re.compile(r"No bindings specified for '(\w+)/gin\.macro'"))


def _open_macro(error: Exception) -> str | None:
  for pattern in _OPEN_MACRO:
    match = pattern.search(str(error))
    if match:
      return match.group(1)
  return None


def parse_filled(path: str) -> list[str]:
  """Parses `path` (clearing gin first), filling each macro it leaves open; returns their
  names, in the order gin asked for them."""
  filled: list[str] = []
  while True:
    gin.clear_config()
    try:
      gin_utils.parse_gin([path], [line for name in filled for line in FILLS[name]])
      return filled
    except ValueError as error:
      name = _open_macro(error)
      if name is None or name in filled:
        raise
      assert name in FILLS, f"{path} leaves the macro {name} open: add a value for it to FILLS"
      filled.append(name)


@pytest.fixture(autouse=True)
def _clean_gin():
  yield
  gin.clear_config()


def _header(path: str) -> str:
  """The comment block a file starts with."""
  lines = (ROOT / path).read_text().splitlines()
  header = []
  for line in lines:
    if not line.startswith("#"):
      break
    header.append(line)
  return "\n".join(header)


def _binds_train() -> bool:
  try:
    gin.query_parameter("train.model_dir")
    return True
  except ValueError:
    return False


def _train_arguments() -> dict:
  """`train`'s arguments as a run would receive them: its defaults, then the resolved
  gin bindings (macros evaluated, @optimizers and @configs called)."""
  defaults = {name: p.default for name, p in inspect.signature(trainer.train).parameters.items()}
  return {**defaults, **gin.get_bindings(trainer.train)}


def test_the_glob_finds_the_recipes():
  assert {"gin/quickstart.gin", "gin/runs/train.gin", "gin/canary/t5_large.gin",
          "gin/canary/stage2.gin", "gin/prost/rot_response.gin"} <= set(GIN_FILES)


@pytest.mark.parametrize("path", GIN_FILES)
def test_every_open_macro_is_named_in_the_file_header(path):
  filled = parse_filled(path)
  header = _header(path)
  missing = [name for name in filled if name not in header]
  assert not missing, f"{path} leaves {missing} to the user but its header does not say so"


@pytest.mark.parametrize("path", GIN_FILES)
def test_every_gin_file_resolves(path):
  parse_filled(path)
  if "MODEL_CONFIG" in gin.config_str():
    config = copy.deepcopy(gin.query_parameter("MODEL_CONFIG/macro.value"))  # evaluates @refs
    assert isinstance(config, (T5Config, ProstConfig)), config
  if not _binds_train():
    return  # a model file, or another piece meant to be included
  args = _train_arguments()
  config = args["model_config"]
  assert isinstance(config, (T5Config, ProstConfig)), config
  optimizer = args["optimizer"]
  assert isinstance(optimizer, Optimizer)
  assert all(math.isfinite(float(optimizer.learning_rate(s))) for s in (0, 100, 10_000))
  for name in (args["mixture_or_task_name"], args["eval_mixture_or_task_name"]):
    if name is not None:
      seqio.get_mixture_or_task(name)  # registered by the file's `import tasks`
  # The vocabulary (vocabulary_spec's bindings) resolves and fits the model.
  trainer._check_vocab_fits(args["mixture_or_task_name"], config.vocab_size)
  lengths = args["task_feature_lengths"]
  assert set(lengths) == {"inputs", "targets"} and all(v > 0 for v in lengths.values())
  if isinstance(config, ProstConfig):
    assert max(lengths.values()) <= config.max_positions, lengths
  assert args["train_steps"] > 0 and args["batch_size"] > 0
  assert args["reduce_on_plateau"] is None or isinstance(args["reduce_on_plateau"],
                                                         ReduceOnPlateau)
  # What train() checks before anything else (e.g. early stopping needs eval_every).
  trainer._check_settings(**{name: args[name] for name in (
      "eval_decode_weights", "eval_every", "early_stopping_patience", "keep_best",
      "reduce_on_plateau", "microbatches", "batch_size", "on_nonfinite")})


def test_a_recipe_resolves_by_its_short_name_too():
  assert (gin_utils.resolve_gin_file("canary/t5_large.gin")
          == gin_utils.resolve_gin_file("gin/canary/t5_large.gin")
          == str(ROOT / "gin" / "canary" / "t5_large.gin"))


# The paper's numbers, typed out here independently of the gin files, so a wrong file fails.
CANARY_TASKS = {"gin/canary/t5_large.gin": "canary_mixture",
                "gin/canary/stage2.gin": "canary_mixture",
                "gin/canary/stage1_social_chem.gin": "social_chem_101_rot",
                "gin/canary/stage1_mic.gin": "moral_integrity_corpus_rot",
                "gin/canary/stage1_norm_bank.gin": "commonsense_norm_bank_judgment"}
PROST_TASKS = {"gin/prost/rot_response.gin": "prost_mixture",
               "gin/prost/response_only.gin": "prost_response_mixture"}


@pytest.mark.parametrize("path", sorted(CANARY_TASKS))
def test_canary_recipes_have_the_papers_settings(path):
  # A Canary run starts from a checkpoint and keeps its vocabulary: both left to the user.
  assert {"MODEL_DIR", "INITIAL_CHECKPOINT_PATH", "VOCABULARY"} <= set(parse_filled(path))
  args = _train_arguments()
  assert args["mixture_or_task_name"] == CANARY_TASKS[path]
  assert str(gin.query_parameter("OPTIMIZER/macro.value")) == "@adam()"
  assert [float(args["optimizer"].learning_rate(s)) for s in (0, 1000, 80_000)] == \
      pytest.approx([1e-5] * 3, rel=1e-6)
  assert args["batch_size"] == 24
  assert args["train_steps"] == 81_000
  assert args["early_stopping_patience"] == 5 and args["keep_best"] is True
  assert args["eval_every"] and args["reduce_on_plateau"] is None
  config = args["model_config"]  # T5-large: T5 v1.0, 24+24 layers, d_model 1024, ReLU MLP 4096
  assert (config.emb_dim, config.num_heads, config.mlp_dim, config.num_encoder_layers,
          config.num_decoder_layers, config.mlp_activations) == (1024, 16, 4096, 24, 24, ("relu",))


def test_canary_stage2_evaluates_every_epoch_of_prosocial_dialog():
  parse_filled("gin/canary/stage2.gin")
  args = _train_arguments()
  # One pass over ProsocialDialog's 120,236 training turns at 4/7 of a batch of 24.
  assert args["eval_every"] == round(120_236 / (24 * 4 / 7))
  assert args["eval_mixture_or_task_name"] == "prosocial_dialog_canary"


@pytest.mark.parametrize("path", sorted(PROST_TASKS))
def test_prost_recipes_have_the_papers_settings(path):
  assert {"MODEL_DIR", "INITIAL_CHECKPOINT_PATH", "VOCABULARY"} <= set(parse_filled(path))
  args = _train_arguments()
  assert args["mixture_or_task_name"] == PROST_TASKS[path]
  assert str(gin.query_parameter("OPTIMIZER/macro.value")) == "@adam()"
  # Adam 1e-5 after a linear warm-up of 100 steps.
  assert [float(args["optimizer"].learning_rate(s)) for s in (0, 50, 100, 149_000)] == \
      pytest.approx([0.0, 5e-6, 1e-5, 1e-5], rel=1e-6)
  assert args["batch_size"] == 32
  assert args["train_steps"] == 150_000
  plateau = args["reduce_on_plateau"]
  assert (plateau.factor, plateau.patience) == (0.5, 3) and args["eval_every"]
  assert args["task_feature_lengths"] == {"inputs": 128, "targets": 128}
  config = args["model_config"]  # Prost 2.7B: 2 encoder / 24 decoder layers, d_model 2560
  assert isinstance(config, ProstConfig)
  assert (config.emb_dim, config.num_heads, config.mlp_dim, config.num_encoder_layers,
          config.num_decoder_layers, config.max_positions) == (2560, 32, 10240, 2, 24, 128)
