"""Build hook: the top-level `gin/` configs ship inside the package as `prosocial_jax/gin/`.

Metadata and dependencies are in pyproject.toml; this only copies the gin files
into the built package, so an installed copy finds them (`gin_utils.shipped_config_dir`).
"""

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent


class BuildPyWithGinConfigs(build_py):

  def run(self):
    super().run()
    target = pathlib.Path(self.build_lib) / "prosocial_jax" / "gin"
    shutil.rmtree(target, ignore_errors=True)
    for source in sorted((ROOT / "gin").rglob("*.gin")):
      destination = target / source.relative_to(ROOT / "gin")
      destination.parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(source, destination)


setup(cmdclass={"build_py": BuildPyWithGinConfigs})
