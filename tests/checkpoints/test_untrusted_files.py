"""No code path unpickles an arbitrary object (issue 16): a PyTorch file is read with
`torch.load(weights_only=True)` and refused, saying why, when it holds anything else;
safetensors is read before a `.bin` beside it; a ParlAI checkpoint or a lone pickle is
refused before a byte of it is unpickled. Every file here is made by the test; each
hostile one would create `marker` if it were ever unpickled.
"""

import ast
import json
import pathlib
import pickle

import numpy as np
import pytest
from etils import epath

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from prosocial_jax.checkpoints.importers import (CheckpointImportError,  # noqa: E402
                                                 import_checkpoint)
from prosocial_jax.checkpoints.importers.hf_weights import WeightFiles as _WeightFiles  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def WeightFiles(folder):  # pylint: disable=invalid-name
  """The importers' reader of a Hugging Face folder (it takes an etils path)."""
  return _WeightFiles(epath.Path(folder))


class Hostile:
  """Unpickling this calls open(marker, "w"): the proof that a file was unpickled."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path):
  path = tmp_path / "UNPICKLED"
  yield path
  assert not path.exists(), "a hostile pickle was unpickled"


def _refusal(call) -> str:
  with pytest.raises(CheckpointImportError) as error:
    call()
  return str(error.value)


def _folder(tmp_path, name="hf"):
  folder = tmp_path / name
  folder.mkdir()
  return folder


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "legacy-pickle"])
def test_a_bin_with_pickled_code_is_refused_and_never_run(tmp_path, marker, zip_format):
  folder = _folder(tmp_path)
  torch.save({"shared.weight": torch.zeros(2, 2), "evil": Hostile(marker)},
             folder / "pytorch_model.bin", _use_new_zipfile_serialization=zip_format)
  message = _refusal(lambda: WeightFiles(folder))
  assert f"Cannot read {folder / 'pytorch_model.bin'} as a PyTorch state dict with " \
         "weights_only=True: it holds pickled Python objects besides tensors" in message
  assert "could run arbitrary code, so it is not opened" in message
  assert "safetensors" in message
  assert "weights_only` set to `False`" not in message  # torch's advice is not passed on


def test_a_bin_naming_a_dangerous_global_says_which(tmp_path, marker):
  folder = _folder(tmp_path)
  torch.save({"evil": Hostile(marker)}, folder / "pytorch_model.bin")
  message = _refusal(lambda: WeightFiles(folder))
  assert "besides tensors (GLOBAL io.open)" in message  # open() pickles as io.open
  assert "add_safe_globals" not in message  # nor torch's advice to allowlist it


def test_a_plain_state_dict_bin_still_reads(tmp_path):
  folder = _folder(tmp_path)
  torch.save({"shared.weight": torch.arange(4.0).reshape(2, 2)}, folder / "pytorch_model.bin")
  files = WeightFiles(folder)
  np.testing.assert_array_equal(files.read("shared.weight"), [[0, 1], [2, 3]])


def test_safetensors_is_read_before_a_bin_beside_it(tmp_path, marker):
  folder = _folder(tmp_path)
  safetensors_numpy.save_file({"shared.weight": np.ones((2, 2), np.float32)},
                              str(folder / "model.safetensors"))
  torch.save({"evil": Hostile(marker)}, folder / "pytorch_model.bin")
  files = WeightFiles(folder)
  assert files.source.name == "model.safetensors"
  np.testing.assert_array_equal(files.read("shared.weight"), np.ones((2, 2)))


def test_a_training_checkpoint_in_a_bin_is_explained(tmp_path):
  folder = _folder(tmp_path)
  torch.save({"model": {"shared.weight": torch.zeros(2)}, "optimizer": {},
              "number_training_updates": 7}, folder / "pytorch_model.bin")
  message = _refusal(lambda: WeightFiles(folder))
  assert "holds a training checkpoint (keys ['model', 'number_training_updates', " \
         "'optimizer']: ParlAI's layout, say), not a state dict of tensors" in message


def _parlai_zoo_folder(tmp_path, marker):
  """A ParlAI zoo folder as blender_3B/ is laid out: `model`, `model.opt`, `model.dict`."""
  folder = _folder(tmp_path, "blender_3B")
  torch.save({"model": {"embeddings.weight": torch.zeros(2)}, "opt": Hostile(marker)},
             folder / "model")
  (folder / "model.opt").write_text(json.dumps({"model": "transformer/generator"}))
  (folder / "model.dict").write_text("__null__\t1\n")
  return folder


@pytest.mark.parametrize("target", ["folder", "model file"])
def test_a_parlai_checkpoint_is_refused_with_what_to_do(tmp_path, marker, target):
  folder = _parlai_zoo_folder(tmp_path, marker)
  path = folder if target == "folder" else folder / "model"
  message = _refusal(lambda: import_checkpoint(str(path)))
  assert message.startswith(f"{folder / 'model'} is a ParlAI checkpoint (a pickled training "
                            "state beside model.opt): it is not read, since unpickling it "
                            "could run arbitrary code")
  assert "facebook/blenderbot-3B" in message and "hf_blenderbot" in message
  # An explicit format does not get past the refusal.
  assert "ParlAI checkpoint" in _refusal(lambda: import_checkpoint(str(path),
                                                                   format="hf_blenderbot"))


@pytest.mark.parametrize("name, write", [
    ("pytorch_model.bin", lambda p, m: torch.save({"evil": Hostile(m)}, p)),
    ("weights", lambda p, m: p.write_bytes(pickle.dumps({"evil": Hostile(m)}, protocol=4))),
    ("model.ckpt", lambda p, m: p.write_bytes(b"not even a pickle")),
], ids=["bin", "bare-pickle-no-suffix", "by-suffix"])
def test_a_lone_pickle_given_as_the_path_is_refused(tmp_path, marker, name, write):
  path = tmp_path / name
  write(path, marker)
  message = _refusal(lambda: import_checkpoint(str(path)))
  assert message.startswith(f"{path} is a single pickle / PyTorch file: it is not unpickled")
  assert "config.json with model.safetensors" in message


# ---------------------------------------------------------------- the source itself

def _calls(tree):
  for node in ast.walk(tree):
    if isinstance(node, ast.Call):
      func = node.func
      name = (f"{func.value.id}.{func.attr}" if isinstance(func, ast.Attribute)
              and isinstance(func.value, ast.Name) else getattr(func, "id", ""))
      yield name, {k.arg: k.value for k in node.keywords}, node


def _sources():
  for folder in ("prosocial_jax", "tasks"):
    for path in sorted((ROOT / folder).rglob("*.py")):
      yield path.relative_to(ROOT), ast.parse(path.read_text())


def test_no_code_path_can_unpickle_an_arbitrary_object():
  """torch.load only with weights_only=True; no pickle / dill / joblib loads; np.load never
  with allow_pickle=True; no yaml.load (its full loader builds objects)."""
  found = []
  for path, tree in _sources():
    for name, keywords, node in _calls(tree):
      where = f"{path}:{node.lineno} {name}"
      if name == "torch.load":
        flag = keywords.get("weights_only")
        if not (isinstance(flag, ast.Constant) and flag.value is True):
          found.append(where + " without weights_only=True")
      elif name in ("pickle.load", "pickle.loads", "dill.load", "dill.loads", "joblib.load",
                    "cloudpickle.load", "cloudpickle.loads", "yaml.load", "yaml.unsafe_load",
                    "pd.read_pickle", "pandas.read_pickle"):
        found.append(where)
      elif name in ("np.load", "numpy.load"):
        flag = keywords.get("allow_pickle")
        if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
          found.append(where + " with allow_pickle")
  assert found == []
  # The scan sees the calls it guards: the two torch.load calls of hf_weights.py.
  loads = [(p, n.lineno) for p, t in _sources() for name, _, n in _calls(t) if name == "torch.load"]
  assert [str(p) for p, _ in loads] == ["prosocial_jax/checkpoints/importers/hf_weights.py"] * 2


def test_a_vocabulary_path_never_writes_outside_model_dir(tmp_path):
  # The vocabulary named by a config or a checkpoint is copied in by its base name only.
  from prosocial_jax.checkpoints.assets import record_vocabulary
  source = tmp_path / "elsewhere" / "spm.model"
  source.parent.mkdir()
  source.write_bytes(b"vocabulary")
  sneaky = str(tmp_path / "elsewhere" / ".." / "elsewhere" / "spm.model")
  copied = record_vocabulary(str(tmp_path / "run"), sneaky)
  assert copied == str(tmp_path / "run" / "vocabulary" / "spm.model")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "run"]
  assert (tmp_path / "run" / "vocabulary" / "spm.model").read_bytes() == b"vocabulary"
