"""The README's model-contract snippet ("Models") runs as printed."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_models_snippet_runs_and_decodes_its_batch():
  readme = (ROOT / "README.md").read_text()
  (snippet,) = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S)
                if "model.predict_batch(params, batch" in block]
  namespace = {}
  exec(compile(snippet, "README.md (Models)", "exec"), namespace)  # pylint: disable=exec-used
  assert namespace["tokens"].shape == (2, 8)
