"""T5X checkpoints -> our T5 parameters: both formats T5X has written.

Legacy (T5X's own `Checkpointer`, `checkpoints.VERSION = 3`):
  checkpoint_<step>/checkpoint            msgpack {'version': 3, 'optimizer':
                                            {'target': {...}, 'state': {'step', 'param_states'}}}
  checkpoint_<step>/target.encoder.layers_0.attention.query.kernel/   zarr array (tensorstore)
A leaf of the msgpack tree is either the array itself (small, unpartitioned
ones) or the JSON of a tensorstore spec whose path is relative to the step
folder. Version 2 stored bfloat16 as uint16; those are read back as bfloat16.

Orbax (current T5X's default, `OrbaxCheckpointManagerInterface`):
  checkpoint_<step>/state/_METADATA       PyTree {'target': {...}, 'state': {...}} (ocdbt)
  checkpoint_<step>/dataset/              the input iterator (not read)
Our own checkpoints are orbax too, but theirs have `checkpoint_<step>/meta` and a
state of `params` / `opt_state` / `step`: `detect` tells them apart by that.

T5X checkpoints carry no model config: `read` needs ours (`config=`, from a
`gin/models/...` file). Parameter names are ours already (models/t5/network.py
took them from t5x/examples/t5); `t5_assembly.assemble` places them, converting
scanned stacks, split-head kernels and per-layer relative-position biases.
The optimizer state (`state/param_states`, `state/step`) is not read: it is
listed in the report.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable, Iterator, Mapping, Optional

import jax.numpy as jnp
import msgpack
import numpy as np
from etils import epath

from prosocial_jax.checkpoints.importers.base import CheckpointImportError, Imported, ImportReport
from prosocial_jax.checkpoints.importers.t5_assembly import (GIN_HINT, SourceTensor, assemble,
                                                             suggest_gin_file)

NAME = "t5x"
# t5_assembly places tensors for a scanned config itself (no stacking afterwards).
READS_SCANNED = True

_STEP_DIR = re.compile(r"checkpoint_(\d+)$")


# --------------------------------------------------------------------------------------
# Finding a T5X checkpoint.
# --------------------------------------------------------------------------------------

def _is_t5x_msgpack(path: epath.Path) -> bool:
  """A `checkpoint` file whose msgpack is {'version': <int>, 'optimizer': {'state' |
  'target': ...}} (flax writes the keys sorted: 'optimizer' first); only its head is
  read. A TF `checkpoint` index is text and fails here."""
  try:
    with path.open("rb") as f:
      head = f.read(256)
  except (OSError, ValueError):
    return False
  unpacker = msgpack.Unpacker(raw=False)
  unpacker.feed(head)
  try:
    if unpacker.read_map_header() != 2:
      return False
    key = unpacker.unpack()
    if key == "version":
      return isinstance(unpacker.unpack(), int)
    if key == "optimizer":
      return unpacker.read_map_header() >= 1 and unpacker.unpack() in ("state", "target")
  except Exception:  # pylint: disable=broad-except  # not msgpack, or not this shape
    return False
  return False


def _orbax_top_keys(state_dir: epath.Path) -> set[str]:
  """First keys of an orbax PyTree's `_METADATA` ({'target', 'state'} for T5X)."""
  try:
    metadata = json.loads((state_dir / "_METADATA").read_text())
  except (OSError, ValueError):
    return set()
  keys = set()
  for entry in metadata.get("tree_metadata", {}).values():
    key_metadata = entry.get("key_metadata") or [{}]
    keys.add(str(key_metadata[0].get("key")))
  return keys


def _is_t5x_orbax_state(state_dir: epath.Path) -> bool:
  return "target" in _orbax_top_keys(state_dir)


def locate(path) -> Optional[tuple[str, epath.Path]]:
  """('legacy', step folder) or ('orbax', state folder) for a T5X checkpoint at `path`
  (the `checkpoint` file, a `checkpoint_<step>` folder, its `state` folder, or a
  MODEL_DIR: its latest step); None when it is not one."""
  path = epath.Path(path)
  try:
    if path.is_file():
      return ("legacy", path.parent) if path.name == "checkpoint" and _is_t5x_msgpack(path) \
          else None
    if not path.is_dir():
      return None
    if (path / "checkpoint").is_file() and _is_t5x_msgpack(path / "checkpoint"):
      return "legacy", path
    if (path / "meta").exists():  # one of our own checkpoints
      return None
    if (path / "state" / "_METADATA").is_file() and _is_t5x_orbax_state(path / "state"):
      return "orbax", path / "state"
    if path.name == "state" and (path / "_METADATA").is_file() and \
        not (path.parent / "meta").exists() and _is_t5x_orbax_state(path):
      return "orbax", path
    steps = sorted((int(m.group(1)), p) for p in path.iterdir()
                   if (m := _STEP_DIR.fullmatch(p.name)) and p.is_dir())
    if steps:
      return locate(steps[-1][1])
  except OSError:
    return None
  return None


def detect(path) -> bool:
  return locate(path) is not None


# --------------------------------------------------------------------------------------
# Reading the two formats.
# --------------------------------------------------------------------------------------

def _flatten(tree, prefix=()) -> Iterator[tuple[tuple[str, ...], Any]]:
  if isinstance(tree, Mapping) and not _is_ts_spec(tree):
    for key, value in tree.items():
      yield from _flatten(value, prefix + (str(key),))
  else:
    yield prefix, tree


def _is_ts_spec(value) -> bool:
  return isinstance(value, Mapping) and "driver" in value and "kvstore" in value


def _absolute_spec(spec: Mapping[str, Any], step_dir: epath.Path) -> dict[str, Any]:
  """A T5X tensorstore spec (path relative to the step folder, whatever driver it was
  written with) pointed at `step_dir`, local or gs://."""
  spec = json.loads(json.dumps(spec))  # a deep copy
  kvstore = spec.get("kvstore", {})
  relative = kvstore.pop("path", None) or spec.pop("path", None)  # tensorstore < 0.1.14: top
  if relative is None:
    raise CheckpointImportError(f"tensorstore spec without a path: {spec}")
  spec.pop("metadata", None)  # chunks / compressor are read from the array's own .zarray
  location = str(step_dir)
  m = re.fullmatch(r"gs://([^/]+)/?(.*)", location)
  if m:
    spec["kvstore"] = {"driver": "gcs", "bucket": m.group(1),
                       "path": f"{m.group(2).rstrip('/')}/{relative}".lstrip("/")}
  else:
    spec["kvstore"] = {"driver": "file", "path": f"{location.rstrip('/')}/{relative}"}
  return spec


def _ts_reader(spec: dict, name: str, version: int) -> Callable[[], np.ndarray]:
  def read():
    import tensorstore as ts  # pylint: disable=import-outside-toplevel
    try:
      array = ts.open(spec, open=True, read=True).result().read().result()
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointImportError(f"cannot read tensor {name} ({spec['kvstore']}): {e}") from e
    array = np.asarray(array)
    if array.dtype == np.uint16:  # version 2 wrote bfloat16 bits as uint16
      array = array.view(jnp.bfloat16)
    return array
  return read


def _legacy_sources(step_dir: epath.Path, report: ImportReport):
  from flax import serialization  # pylint: disable=import-outside-toplevel
  file = step_dir / "checkpoint"
  try:
    contents = serialization.msgpack_restore(file.read_bytes())
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointImportError(f"T5X checkpoint {file}: not readable msgpack: {e}") from e
  if not isinstance(contents, Mapping) or "optimizer" not in contents:
    raise CheckpointImportError(f"T5X checkpoint {file}: no 'optimizer' at the top "
                                f"(keys: {sorted(contents) if isinstance(contents, Mapping) else type(contents)})")
  version = int(contents.get("version", 0))
  optimizer = contents["optimizer"]
  if "target" not in optimizer:
    raise CheckpointImportError(f"T5X checkpoint {file}: no 'optimizer/target' (keys: "
                                f"{sorted(optimizer)})")
  sources = {}
  for keys, leaf in _flatten(optimizer["target"]):
    name = "/".join(keys)
    source_name = f"target/{name}"
    if _is_ts_spec(leaf):
      spec = _absolute_spec(leaf, step_dir)
      shape = tuple(leaf.get("metadata", {}).get("shape", ()))
      dtype = str(leaf.get("dtype") or leaf.get("metadata", {}).get("dtype", "?"))
      if dtype in ("uint16", "<u2"):
        dtype = "bfloat16 (as uint16)"
      sources[name] = SourceTensor(source_name, shape, dtype,
                                   _ts_reader(spec, source_name, version))
    elif leaf is None:
      continue
    else:
      array = np.asarray(leaf)
      sources[name] = SourceTensor(source_name, tuple(array.shape), array.dtype.name,
                                   lambda a=array: a)
  _report_optimizer(optimizer.get("state"), report)
  return sources


def _report_optimizer(state, report: ImportReport):
  if not isinstance(state, Mapping):
    return
  leaves = list(_flatten(state.get("param_states", {})))
  leaves = [leaf for _, leaf in leaves if leaf is not None and not (
      isinstance(leaf, Mapping) and not leaf)]
  if leaves:
    report.ignored["state/param_states/*"] = f"optimizer state ({len(leaves)} tensors)"
  if "step" in state:
    step = state["step"]
    step = step if not _is_ts_spec(step) else "?"
    try:
      step = int(np.asarray(step))
    except (TypeError, ValueError):
      pass
    report.ignored["state/step"] = f"the training step ({step}); an import starts at 0"
  others = sorted(k for k in state if k not in ("param_states", "step"))
  for key in others:
    report.ignored[f"state/{key}"] = "optimizer state"


def _orbax_sources(state_dir: epath.Path, report: ImportReport):
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  try:
    metadata = ocp.PyTreeCheckpointHandler().metadata(state_dir)
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointImportError(f"T5X checkpoint {state_dir}: cannot read its orbax "
                                f"metadata: {e}") from e
  tree = getattr(metadata, "tree", metadata)
  if not isinstance(tree, Mapping) or "target" not in tree:
    raise CheckpointImportError(f"T5X checkpoint {state_dir}: no 'target' in its state")
  sources = {}
  for keys, leaf in _flatten(tree["target"]):
    if leaf is None or (isinstance(leaf, Mapping) and not leaf):
      continue
    name = "/".join(keys)
    dtype = getattr(leaf, "dtype", None)
    sources[name] = SourceTensor(
        f"target/{name}", tuple(getattr(leaf, "shape", ())),
        jnp.dtype(dtype).name if dtype is not None else "?",
        functools.partial(_orbax_read, state_dir, ("target",) + keys))
  state = tree.get("state")
  if isinstance(state, Mapping):
    _report_optimizer({k: (None if k == "step" else v) for k, v in state.items()}, report)
    if "step" in state:
      report.ignored["state/step"] = "the training step; an import starts at 0"
  return sources


def _orbax_read(state_dir: epath.Path, keys: tuple[str, ...]) -> np.ndarray:
  """One leaf of an orbax PyTree, nothing else (partial restore)."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  item: Any = 0
  args: Any = ocp.RestoreArgs(restore_type=np.ndarray)
  for key in reversed(keys):
    item, args = {key: item}, {key: args}
  with ocp.PyTreeCheckpointer() as checkpointer:
    restored = checkpointer.restore(state_dir, args=ocp.args.PyTreeRestore(
        item=item, restore_args=args, partial_restore=True))
  for key in keys:
    restored = restored[key]
  return np.asarray(restored)


def read(path, config=None) -> Imported:
  """Reads the T5X checkpoint at `path` into our names for `config` (required)."""
  found = locate(path)
  if found is None:
    raise CheckpointImportError(
        f"{path} is not a T5X checkpoint: no `checkpoint` msgpack file ({{'version', "
        f"'optimizer'}}) and no orbax `state/_METADATA` holding a 'target'")
  kind, where = found
  report = ImportReport()
  sources = (_legacy_sources(where, report) if kind == "legacy"
             else _orbax_sources(where, report))
  if config is None:
    match = suggest_gin_file({name: t.shape for name, t in sources.items()})
    raise CheckpointImportError(
        f"T5X checkpoint {where}: T5X checkpoints carry no model config; " + GIN_HINT
        + (f" (its shapes are those of {match})" if match else ""))
  return assemble(NAME, str(where), config, sources, report)
