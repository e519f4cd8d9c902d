"""T5 tensors under T5X's names -> our T5 layout: what the T5X and Mesh-TF importers share.

A format module lists its tensors as `SourceTensor`s named as T5X's target tree
(`encoder/layers_0/attention/query/kernel`; scanned `encoder/layers/...` or
`encoder/encoder/...`), not yet read; `assemble` checks every name and shape
against our config and returns an `Imported` that reads them one at a time.
What can differ from our layout, and is converted here (each conversion listed
in the report):

* scanned stacks: `encoder/layers/...` (ours) or `encoder/encoder/...`
  (t5x/examples/scalable_t5, flaxformer), the layer axis where T5X puts it (1,
  `param_scan_axis`; found from the shapes, so 0 works too). They become
  `layers_{i}` or our own scanned stack (also axis 1: `stack.PARAMS_SCAN_AXIS`),
  whichever the config asks for, and so do unscanned checkpoints.
* split-head attention kernels ([embed, heads, head_dim], [heads, head_dim, embed]
  in scalable_t5): merged into our [embed, heads*head_dim] and back.
* relative-position biases: ours is one per stack (`encoder/relpos_bias`, as the
  original T5). A checkpoint with one per layer (scanned flaxformer and
  scalable_t5 models always have that) is accepted only when all layers hold the
  same table; otherwise it is refused, naming the tensor.
* bfloat16 tensors: read as float32.

Tensors are read one at a time (one tensorstore / orbax / TF read each); a
scanned source tensor is read once for all its layers.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np

from prosocial_jax.checkpoints.importers.base import (CheckpointImportError, Imported,
                                                      ImportReport, expected_param_shapes)
from prosocial_jax.models import stack
from prosocial_jax.models.t5.config import T5_1_0_SIZES, T5_1_1_SIZES, T5Config

_STACKS = ("encoder", "decoder")


@dataclasses.dataclass(frozen=True)
class SourceTensor:
  """One tensor of an outside checkpoint, not yet read.

  `name`: the source's own name, for messages (e.g. 'target/encoder/layers_0/...'
  or 'encoder/block_000/layer_000/SelfAttention/q'). `read()` returns it as numpy.
  """
  name: str
  shape: tuple[int, ...]
  dtype: str
  read: Callable[[], np.ndarray]


@dataclasses.dataclass(frozen=True)
class _Piece:
  """One layer's tensor (or a stack-level one) inside a source tensor."""
  source: SourceTensor
  layer_axis: Optional[int] = None  # set: index `layer` of this axis is the tensor
  layer: int = 0
  # Split-head attention kernel: "in" [embed, heads, head_dim] (query/key/value) or
  # "out" [heads, head_dim, embed], merged into our 2-D kernel.
  merge: Optional[str] = None

  def raw_shape(self) -> tuple[int, ...]:
    shape = list(self.source.shape)
    if self.layer_axis is not None:
      del shape[self.layer_axis]
    return tuple(shape)

  def shape(self) -> tuple[int, ...]:
    s = self.raw_shape()
    if self.merge == "in":
      return (s[0], s[1] * s[2])
    if self.merge == "out":
      return (s[0] * s[1], s[2])
    return s

  def read(self, cache: dict) -> np.ndarray:
    source = self.source
    if self.layer_axis is None:
      array = to_float32(source.read(), source.name)
    else:
      if source.name not in cache:
        cache.clear()  # one source tensor in memory at a time
        cache[source.name] = to_float32(source.read(), source.name)
      array = np.take(cache[source.name], self.layer, axis=self.layer_axis)
    if tuple(array.shape) != self.raw_shape():
      raise CheckpointImportError(f"tensor {source.name} was read with shape {array.shape}, "
                                  f"but its metadata says {source.shape}")
    return np.ascontiguousarray(array.reshape(self.shape()))


def to_float32(array, name: str) -> np.ndarray:
  array = np.asarray(array)
  if array.dtype == np.float32:
    return array
  if array.dtype.kind != "f" and array.dtype.name != "bfloat16":
    raise CheckpointImportError(f"tensor {name} has dtype {array.dtype}, not a float type")
  return array.astype(np.float32)


def _split_kind(name: str, shape, want) -> Optional[str]:
  """"in" / "out" when `shape` is the split-head form of the 2-D attention kernel
  `name` (of shape `want`), else None."""
  m = re.search(r"(query|key|value|out)/kernel$", name)
  if not m or want is None or len(shape) != 3 or len(want) != 2:
    return None
  if m.group(1) != "out" and shape[0] == want[0] and shape[1] * shape[2] == want[1]:
    return "in"
  if m.group(1) == "out" and shape[0] * shape[1] == want[0] and shape[2] == want[1]:
    return "out"
  return None


GIN_HINT = ("pass our model config for it (python -m prosocial_jax.convert "
             "--gin_file=gin/models/...)")


def suggest_gin_file(shapes: Mapping[str, tuple[int, ...]]) -> Optional[str]:
  """The gin/models file whose sizes match `shapes` (per-layer T5X names), if any."""
  try:
    vocab, emb = shapes["token_embedder/embedding"]
    heads = shapes["encoder/relpos_bias/rel_embedding"][0]
    inner = shapes["encoder/layers_0/attention/query/kernel"][-1]
    gated = "encoder/layers_0/mlp/wi_0/kernel" in shapes
    mlp = shapes["encoder/layers_0/mlp/" + ("wi_0" if gated else "wi") + "/kernel"][-1]
  except (KeyError, ValueError, IndexError):
    return None
  layers = lambda s: len({k.split("/")[1] for k in shapes if k.startswith(f"{s}/layers_")})
  found = dict(vocab_size=vocab, emb_dim=emb, num_heads=heads, head_dim=inner // heads,
               mlp_dim=mlp, num_encoder_layers=layers("encoder"),
               num_decoder_layers=layers("decoder"))
  folder, table = ("t5_1_1", T5_1_1_SIZES) if gated else ("t5_1_0", T5_1_0_SIZES)
  for size, fields in table.items():
    if "vocab_size" in fields and all(found[k] == v for k, v in fields.items()):
      return f"gin/models/{folder}/{size}.gin"
  return None


class _Layout:
  """What our model wants for a config: its own paths (what is yielded) and every
  tensor under T5X's unscanned per-layer names (what sources are checked against)."""

  def __init__(self, config: T5Config):
    self.config = config
    self.ours = expected_param_shapes(config)
    self.per_layer = (expected_param_shapes(dataclasses.replace(config, scan_layers=False))
                      if config.scan_layers else dict(self.ours))
    self.num_layers = {"encoder": config.num_encoder_layers,
                       "decoder": config.num_decoder_layers}

  def want(self, stack_name: str, rest: str) -> Optional[tuple[int, ...]]:
    """Per-layer shape of `rest` in a layer of `stack_name` (relative-position
    biases: the stack's one)."""
    if rest == "relpos_bias/rel_embedding":
      return self.per_layer.get(f"{stack_name}/{rest}")
    return self.per_layer.get(f"{stack_name}/layers_0/{rest}")

  def plan(self) -> list[tuple[str, list[str]]]:
    """(our path, the per-layer names it is made of), ordered so that the layers of
    one scanned source tensor are read one after another."""
    out = []
    for path in self.ours:
      m = re.fullmatch(r"(encoder|decoder)/layers/(.+)", path)
      if m and self.config.scan_layers:
        out.append((path, [f"{m.group(1)}/layers_{i}/{m.group(2)}"
                           for i in range(self.num_layers[m.group(1)])]))
      else:
        out.append((path, [path]))

    def key(item):
      m = re.fullmatch(r"(encoder|decoder)/layers_(\d+)/(.+)", item[0])
      return (m.group(1), m.group(3), int(m.group(2))) if m else (item[0], "", -1)
    return sorted(out, key=key)


def _hint_unmapped(name: str, config: T5Config) -> str:
  if name.endswith("logits_dense/kernel") and config.logits_via_embedding:
    return (" (the checkpoint has its own output layer, as T5 v1.1; the config ties it to "
            "the embedding: logits_via_embedding=True)")
  if re.search(r"mlp/wi(_\d+)?/kernel$", name):
    return (f" (the config's mlp_activations={config.mlp_activations} name other MLP "
            "kernels: one activation is `wi`, several are `wi_0`, `wi_1`, ...)")
  m = re.match(r"(encoder|decoder)/layers_(\d+)/", name)
  if m and int(m.group(2)) >= getattr(config, f"num_{m.group(1)}_layers"):
    return f" (the config has {getattr(config, f'num_{m.group(1)}_layers')} {m.group(1)} layers)"
  return ""


def _hint_missing(name: str, config: T5Config) -> str:
  if name.endswith("logits_dense/kernel"):
    return (" (a checkpoint without an output layer is T5 v1.0, tied to the embedding: "
            "logits_via_embedding=True)")
  if re.search(r"mlp/wi(_\d+)?/kernel$", name):
    return f" (mlp_activations={config.mlp_activations} in the config)"
  return ""


_RELPOS = re.compile(r"(encoder|decoder)/(?:layers_(\d+)/)?relpos_bias/rel_embedding")
_SCANNED = re.compile(r"(encoder|decoder)/(layers|encoder|decoder)/(.+)")


def assemble(fmt: str, source_path: str, config: Any, tensors: Mapping[str, SourceTensor],
             report: ImportReport, vocabulary: Optional[dict] = None) -> Imported:
  """Source tensors named as T5X's target tree (`encoder/layers_0/attention/query/kernel`,
  or scanned `encoder/layers/...` / `encoder/encoder/...`) -> an `Imported` in our
  layout for `config`. Every name and shape is checked before anything is read
  (except relative-position biases kept per layer: those are compared here)."""
  where = f"{fmt} checkpoint {source_path}"
  if not isinstance(config, T5Config):
    raise CheckpointImportError(f"{where}: a T5 model config is needed (got "
                                f"{type(config).__name__}); " + GIN_HINT)
  layout = _Layout(config)
  pieces: dict[str, _Piece] = {}  # per-layer name -> where it is in the source
  relpos: dict[str, dict[Optional[int], _Piece]] = {s: {} for s in _STACKS}

  def place(name: str, piece: _Piece):
    m = _RELPOS.fullmatch(name)
    if m:
      relpos[m.group(1)][None if m.group(2) is None else int(m.group(2))] = piece
    elif name in pieces:
      raise CheckpointImportError(f"{where}: tensors {pieces[name].source.name} and "
                                  f"{piece.source.name} both give {name}")
    else:
      pieces[name] = piece

  # A scanned tensor holds all layers of a stack on one axis: which one is read
  # from the shapes (T5X's param_scan_axis is 1 unless a gin file changed it), and
  # it must be the same for all.
  scanned, axes_of = [], {}
  for name, tensor in tensors.items():
    m = _SCANNED.fullmatch(name)
    if not (m and m.group(2) in ("layers", m.group(1))):
      place(name, _Piece(tensor, merge=_split_kind(name, tensor.shape,
                                                    layout.per_layer.get(name))))
      continue
    stack_name, rest = m.group(1), m.group(3)
    want = layout.want(stack_name, rest)
    if want is None:
      raise CheckpointImportError(
          f"{where}: scanned tensor {tensor.name} has no place in our model (as "
          f"{stack_name}/layers_<i>/{rest})" + _hint_unmapped(rest, config))
    length = layout.num_layers[stack_name]
    axes = set()
    for axis, size in enumerate(tensor.shape):
      shape = tensor.shape[:axis] + tensor.shape[axis + 1:]
      if size == length and (shape == want or _split_kind(rest, shape, want)):
        axes.add(axis)
    if not axes:
      raise CheckpointImportError(
          f"{where}: scanned tensor {tensor.name} has shape {tensor.shape}, but the config "
          f"needs {length} {stack_name} layers of {want} (stacked on any one axis)")
    scanned.append((stack_name, rest, tensor))
    axes_of[tensor.name] = axes
  if scanned:
    common = set.intersection(*axes_of.values())
    if not common:
      raise CheckpointImportError(
          f"{where}: the scanned tensors have no layer axis in common: "
          + "; ".join(f"{n}: {sorted(a)}" for n, a in sorted(axes_of.items())))
    layer_axis = 1 if 1 in common else min(common)
    for stack_name, rest, tensor in scanned:
      shape = tensor.shape[:layer_axis] + tensor.shape[layer_axis + 1:]
      merge = _split_kind(rest, shape, layout.want(stack_name, rest))
      for i in range(layout.num_layers[stack_name]):
        place(f"{stack_name}/layers_{i}/{rest}", _Piece(tensor, layer_axis, i, merge))

  # One relative-position bias per stack. A checkpoint with one per layer is
  # accepted when all are the same table; T5X's own importer reads a bias in
  # layer 0 alone (Mesh-TF's block_000) as the shared one.
  for stack_name, found in relpos.items():
    name = f"{stack_name}/relpos_bias/rel_embedding"
    if not found:
      continue
    if set(found) in ({None}, {0}):
      pieces[name] = found.get(None) or found[0]
      continue
    layers = sorted(k for k in found if k is not None)
    first = found[layers[0]]
    if None in found or layers != list(range(layout.num_layers[stack_name])):
      raise CheckpointImportError(
          f"{where}: relative-position biases for {stack_name} layers {layers}"
          + (" and a shared one" if None in found else "")
          + f" ({first.source.name}); our T5 has one per stack (or one per layer in all "
          f"{layout.num_layers[stack_name]} layers, when they are equal)")
    tables = [found[i].read({}) for i in layers]
    if any(t.shape != tables[0].shape or not np.array_equal(t, tables[0]) for t in tables):
      raise CheckpointImportError(
          f"{where}: {first.source.name} holds a different relative-position bias in each "
          f"{stack_name} layer (scanned flaxformer and scalable_t5 models do); our T5 shares "
          f"one per stack ({name}), as the original T5, so it cannot be imported exactly")
    pieces[name] = first
    report.converted[name] = (f"one copy per layer in {first.source.name}, all "
                              f"{len(layers)} equal: kept once")

  # Every name and shape, before anything is read.
  for name, piece in sorted(pieces.items()):
    if name not in layout.per_layer:
      raise CheckpointImportError(f"{where}: tensor {piece.source.name} has no place in "
                                  f"our model (as {name})" + _hint_unmapped(name, config))
  for name, want in sorted(layout.per_layer.items()):
    if name not in pieces:
      raise CheckpointImportError(f"{where}: no tensor for {name}, which the config needs "
                                  f"(shape {want})" + _hint_missing(name, config))
    piece = pieces[name]
    if piece.shape() != want:
      part = "" if piece.shape() == piece.source.shape else f" (for {name}: {piece.shape()})"
      raise CheckpointImportError(
          f"{where}: tensor {piece.source.name} has shape {piece.source.shape}{part}, but "
          f"the config needs {want} for {name}")

  plan = layout.plan()
  for path, parts in plan:
    report.loaded.append(path)
    notes = _conversions([pieces[p] for p in parts], len(parts) > 1,
                         kept_once=path in report.converted)
    if notes:
      earlier = [report.converted[path]] if path in report.converted else []
      report.converted[path] = "; ".join(earlier + notes)

  def tensors_fn() -> Iterator[tuple[str, np.ndarray]]:
    cache: dict[str, np.ndarray] = {}  # the scanned source tensor being split up
    for path, parts in plan:
      if len(parts) > 1 and _same_stack([pieces[p] for p in parts]):
        yield path, to_float32(pieces[parts[0]].source.read(), pieces[parts[0]].source.name)
        continue
      arrays = [pieces[p].read(cache) for p in parts]
      yield path, (arrays[0] if len(arrays) == 1
                   else np.stack(arrays, axis=stack.PARAMS_SCAN_AXIS))

  return Imported(format=fmt, source=str(source_path), config=config, tensors=tensors_fn,
                  report=report, vocabulary=vocabulary)


def _same_stack(parts: list[_Piece]) -> bool:
  """Are `parts` all layers, in order, of one source tensor already in our scanned layout?"""
  first = parts[0]
  return (first.layer_axis == stack.PARAMS_SCAN_AXIS and first.merge is None
          and all(p.source is first.source and p.layer == i and p.layer_axis == first.layer_axis
                  and p.merge is None for i, p in enumerate(parts))
          and first.source.shape[first.layer_axis] == len(parts))


def _conversions(parts: list[_Piece], stacked: bool, kept_once: bool) -> list[str]:
  """What was done to make one of our tensors of `parts`, for the report."""
  first = parts[0]
  notes = []
  if first.merge:
    notes.append(f"heads merged ({first.source.name} {first.raw_shape()} per layer)")
  if first.layer_axis is not None and not stacked and not kept_once:
    notes.append(f"layer {first.layer} of {first.source.name} (layer axis {first.layer_axis})")
  if stacked and first.layer_axis != stack.PARAMS_SCAN_AXIS:
    notes.append(f"{len(parts)} layers stacked on axis {stack.PARAMS_SCAN_AXIS}"
                 + (f" (from axis {first.layer_axis})" if first.layer_axis is not None else ""))
  cast = {p.source.name: p.source.dtype for p in parts if p.source.dtype != "float32"}
  for name, dtype in cast.items():
    notes.append(f"{dtype} -> float32" + (f" ({name})" if len(parts) > 1 else ""))
  return notes
