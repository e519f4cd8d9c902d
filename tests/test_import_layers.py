"""Imports run one way (README, "Architecture"): each package uses only those below it.

    models <- inference <- evaluation <- training <- entry points
    data <- tasks;  partitioning and checkpoints use none of training / evaluation / inference
    inference also uses checkpoints and data (Canary and Prost open checkpoints and
    encode text as the tasks do)

Every module of the library and of `tasks` is parsed (imports inside functions
included) and each edge between packages is checked against the table.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# package -> the packages its modules may import (besides itself). `version` (which
# code this is) and `user_errors` (the base class of every error about the user's
# input, standard library only) may be imported by everyone.
EVERYONES = ("version", "user_errors")
ALLOWED = {
    "version": set(),
    "user_errors": set(),
    "models": set(),
    "inference": {"models", "checkpoints", "data"},
    "evaluation": {"inference", "models", "partitioning", "data"},
    "training": {"evaluation", "inference", "models", "partitioning", "checkpoints", "data"},
    "partitioning": set(),
    "checkpoints": {"models", "partitioning", "data"},  # data: the model card names corpora
    "data": set(),
    # Tasks name their metric functions (evaluation.metrics) as SeqIO requires.
    "tasks": {"data", "evaluation"},
    "entry": {"models", "inference", "evaluation", "training", "partitioning", "checkpoints",
              "data", "tasks"},
}


def _package_of(module: str) -> str | None:
  """'prosocial_jax.models.t5.network' -> 'models'; 'tasks.casual' -> 'tasks'; else None."""
  parts = module.split(".")
  if parts[0] == "tasks":
    return "tasks"
  if parts[0] != "prosocial_jax":
    return None
  if len(parts) == 1 or parts[1] not in ALLOWED:
    return "entry"  # prosocial_jax.train, prosocial_jax.gin_utils, ...
  return parts[1]


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _imported_modules(path: pathlib.Path, module: str):
  package = module if path.name == "__init__.py" else module.rpartition(".")[0]
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolve against this module's package
        anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      for alias in node.names:
        yield node.lineno, f"{base}.{alias.name}" if base else alias.name


def _library_files():
  for folder in ("prosocial_jax", "tasks"):
    yield from sorted((ROOT / folder).rglob("*.py"))


def test_every_import_follows_the_layer_table():
  violations = []
  for path in _library_files():
    module = _module_name(path)
    source = _package_of(module)
    for line, imported in _imported_modules(path, module):
      target = _package_of(imported)
      if target is None or target == source:
        continue
      if target not in ALLOWED[source] and target not in EVERYONES:
        violations.append(f"{path.relative_to(ROOT)}:{line} ({source}) imports {imported} "
                          f"({target})")
  assert not violations, "imports against the layer table:\n" + "\n".join(violations)


def test_the_layer_table_has_no_cycle_and_covers_every_package():
  packages = {p.name for p in (ROOT / "prosocial_jax").iterdir()
              if p.is_dir() and (p / "__init__.py").exists()} | set(EVERYONES)
  assert packages <= set(ALLOWED), f"packages missing from the table: {packages - set(ALLOWED)}"
  visiting, done = set(), set()

  def visit(package, trail):
    assert package not in visiting, f"cycle: {' -> '.join(trail + [package])}"
    if package in done:
      return
    visiting.add(package)
    for target in ALLOWED[package]:
      visit(target, trail + [package])
    visiting.remove(package)
    done.add(package)

  for package in ALLOWED:
    visit(package, [])


def test_the_checker_sees_a_backward_import(tmp_path):
  # The parser itself: a function-level import of training from evaluation is found.
  fake = tmp_path / "prosocial_jax" / "evaluation" / "x.py"
  fake.parent.mkdir(parents=True)
  fake.write_text("def f():\n  from prosocial_jax.training import steps\n")
  edges = list(_imported_modules(fake, "prosocial_jax.evaluation.x"))
  assert edges == [(2, "prosocial_jax.training.steps")]
  assert "training" not in ALLOWED[_package_of("prosocial_jax.evaluation.x")]
