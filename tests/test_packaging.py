"""The wheel carries everything a run needs, and an installed copy trains from any directory."""

import os
import pathlib
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import pytest

from prosocial_jax import gin_utils

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
  """`python -m build` (sdist, then the wheel from it), offline: the test env's setuptools."""
  out = tmp_path_factory.mktemp("dist")
  result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                           str(ROOT)], capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
  assert len(wheels) == 1 and len(sdists) == 1
  return wheels[0], sdists[0]


def _shipped_files():
  gin_files = {f"prosocial_jax/gin/{name}" for name in gin_utils.shipped_config_names()}
  data = {p.relative_to(ROOT).as_posix()
          for pattern in ("prosocial_jax/data/sample/*/*.json", "tasks/vocab/*.model")
          for p in ROOT.glob(pattern)}
  return gin_files, data


def test_the_wheel_holds_every_gin_file_the_vocabulary_and_the_sample(dist):
  wheel, sdist = dist
  names = set(zipfile.ZipFile(wheel).namelist())
  gin_files, data = _shipped_files()
  assert len(gin_files) >= 15 and "prosocial_jax/gin/quickstart.gin" in gin_files
  assert "tasks/vocab/prosocial_sample.model" in data
  assert "prosocial_jax/data/sample/prosocial_dialog/train.json" in data
  assert gin_files | data <= names, sorted((gin_files | data) - names)
  packages = {p.parent.relative_to(ROOT).as_posix() + "/__init__.py"
              for folder in ("prosocial_jax", "tasks") for p in (ROOT / folder).rglob("__init__.py")}
  assert packages <= names, sorted(packages - names)
  sdist_names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
  assert {"gin/quickstart.gin", "setup.py", "pyproject.toml", "README.md"} <= sdist_names


@pytest.mark.slow
def test_an_installed_wheel_trains_the_quickstart_from_another_directory(dist, tmp_path):
  wheel, _ = dist
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  # Reuse the test environment's dependencies: its site-packages as a plain path entry
  # (so its editable install of this clone is NOT active; the wheel's copy is).
  site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        capture_output=True, text=True, check=True).stdout.strip()
  pathlib.Path(site, "test_env_dependencies.pth").write_text(sysconfig.get_paths()["purelib"])
  subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
                  "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)

  workdir = tmp_path / "elsewhere"
  workdir.mkdir()
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  env.pop("XLA_FLAGS", None)
  env.pop("PYTHONPATH", None)

  def run(*args, timeout=600):
    result = subprocess.run([python, *args], cwd=workdir, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout

  where = run("-c", "import prosocial_jax, tasks; print(prosocial_jax.__file__, tasks.__file__)")
  assert str(ROOT) not in where and str(venv) in where
  assert run("-m", "prosocial_jax", "--version").strip() == "prosocial_jax 0.1.0"
  resolved = run("-c", "from prosocial_jax import gin_utils as g\n"
                 "for n in ['gin/quickstart.gin', 'quickstart.gin', 'models/t5_1_1/large.gin']:\n"
                 "  print(g.resolve_gin_file(n))")
  assert resolved.split() == [str(venv / p) for p in (
      f"lib/python3.11/site-packages/prosocial_jax/gin/{n}"
      for n in ("quickstart.gin", "quickstart.gin", "models/t5_1_1/large.gin"))]
  out = run("-m", "prosocial_jax.train", "--gin_file=quickstart.gin", "--gin.MODEL_DIR='runs/q'",
            "--gin.TRAIN_STEPS=2", "--gin.train.log_every=1", "--gin.train.eval_at_end=False")
  assert "prosocial_jax 0.1.0" in out and "step 2/2 | loss" in out
  assert (workdir / "runs" / "q" / "checkpoint_2" / "state").is_dir()
  assert (workdir / "runs" / "q" / "vocabulary" / "prosocial_sample.model").exists()
