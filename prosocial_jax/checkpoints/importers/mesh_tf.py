"""Mesh-TensorFlow T5 checkpoints (the original T5 releases, Delphi) -> our T5 parameters.

A TensorFlow checkpoint (`checkpoint` index text file, `model.ckpt-<step>.index`,
`.data-*`), read with `tf.train.load_checkpoint`, so gs:// works as local paths
do. Its variables are renamed to T5X's names (the table below, as
t5x/checkpoint_importer.py does) and then placed by `t5_assembly.assemble`, which checks
every shape against our config and builds scanned stacks when the config asks.

    shared/embedding                                         token_embedder/embedding
    encoder/block_000/layer_000/SelfAttention/relative_attention_bias
                                                             encoder/relpos_bias/rel_embedding
    encoder/block_<i>/layer_000/SelfAttention/{q,k,v,o}      encoder/layers_<i>/attention/{query,key,value,out}/kernel
    encoder/block_<i>/layer_000/{layer,rms}_norm/scale       .../pre_attention_layer_norm/scale
    encoder/block_<i>/layer_001/DenseReluDense/wi[_0|_1]/kernel, wo/kernel   .../mlp/...
    encoder/block_<i>/layer_001/{layer,rms}_norm/scale       .../pre_mlp_layer_norm/scale
    encoder/{final_layer,rms}_norm/scale                     encoder/encoder_norm/scale
    decoder/block_<i>/layer_000 SelfAttention, 001 EncDecAttention, 002 DenseReluDense
                                                             self_attention, encoder_decoder_attention, mlp
    decoder/{final_layer,rms}_norm/scale                     decoder/decoder_norm/scale
    decoder/logits/kernel                                    decoder/logits_dense/kernel (v1.1)

No transposes: Mesh-TF keeps kernels [in, out] with heads joined ([d_model,
heads*d_kv], heads major) and the relative bias [heads, buckets], as T5X and we
do (it is Hugging Face that stores [out, in]). bfloat16 variables are read as
float32. Adafactor slot variables (`<name>_slot_vr`, `_slot_vc`, `_slot_v`, any
`_slot_*`) and `global_step` are not read: the report lists them. A bias in
every block (not only block_000) is accepted only when all are equal (t5_assembly.py).
"""

from __future__ import annotations

import re
from typing import Optional

from etils import epath

from prosocial_jax.checkpoints.importers import t5_assembly, t5_names, t5x
from prosocial_jax.checkpoints.importers.base import CheckpointImportError, Imported, ImportReport

NAME = "mesh_tf"
# t5_assembly places tensors for a scanned config itself (no stacking afterwards).
READS_SCANNED = True

# The Mesh-TF module of each sub-layer of a block, in t5_names.SUBLAYERS' order.
_MODULES = {"encoder": ("SelfAttention", "DenseReluDense"),
            "decoder": ("SelfAttention", "EncDecAttention", "DenseReluDense")}

_BLOCK = re.compile(r"(encoder|decoder)/block_(\d+)/layer_(\d+)/(.+)")
_SLOT = re.compile(r".+(_slot_\w+)")


def rename(name: str) -> Optional[str]:
  """A Mesh-TF T5 variable name -> T5X's (= ours, unscanned), or None when it is no
  T5 parameter we know."""
  if name == "shared/embedding":
    return t5_names.EMBEDDING
  if name == "decoder/logits/kernel":
    return t5_names.OUTPUT_KERNEL
  m = re.fullmatch(r"(encoder|decoder)/(?:final_layer|rms)_norm/scale", name)
  if m:
    return t5_names.final_norm(m.group(1))
  m = _BLOCK.fullmatch(name)
  if not m:
    return None
  stack, block, sublayer, rest = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
  if sublayer >= len(_MODULES[stack]):
    return None
  module = _MODULES[stack][sublayer]
  if re.fullmatch(r"(?:layer|rms)_norm/scale", rest):
    return t5_names.layer(stack, block, sublayer, "norm")
  if rest == "SelfAttention/relative_attention_bias" and module == "SelfAttention":
    # Per layer, as t5x/checkpoint_importer.py: t5_assembly.assemble takes block 0's alone as
    # the stack's shared table (t5_names.relpos), and one in every block when all equal.
    return f"{stack}/layers_{block}/relpos_bias/rel_embedding"
  m = re.fullmatch(r"(\w+)/(q|k|v|o)", rest)
  if m and m.group(1) == module and module.endswith("Attention"):
    return t5_names.layer(stack, block, sublayer, m.group(2))
  m = re.fullmatch(r"DenseReluDense/(wi|wo|wi_\d+)/kernel", rest)
  if m and module == "DenseReluDense":
    return t5_names.layer(stack, block, sublayer, m.group(1))
  return None


def _hint(name: str) -> str:
  if re.fullmatch(r"(encoder|decoder)/embedding", name):
    return "; separate encoder / decoder embeddings: our T5 shares one (shared/embedding)"
  if name.startswith("transformer/"):
    return "; a decoder-only Mesh-TF model: ours is an encoder-decoder"
  if _BLOCK.fullmatch(name):
    return "; block layers are SelfAttention / [EncDecAttention] / DenseReluDense in that order"
  return ""


# --------------------------------------------------------------------------------------
# Finding a TensorFlow checkpoint (no TensorFlow import: `detect` runs for every path).
# --------------------------------------------------------------------------------------

def _is_tf_checkpoint_state(path: epath.Path) -> bool:
  """TF's `checkpoint` index file: text `model_checkpoint_path: "..."` (T5X's
  `checkpoint` is msgpack)."""
  try:
    with path.open("rb") as f:
      return f.read(64).lstrip().startswith(b"model_checkpoint_path")
  except (OSError, ValueError):
    return False


def _index_prefixes(folder: epath.Path) -> list[str]:
  """Checkpoint prefixes of `folder`'s `*.index` files, except T5X's input-pipeline
  ones (train_ds-*) that sit next to a T5X checkpoint."""
  return sorted(str(p)[:-len(".index")] for p in folder.glob("*.index")
                if not p.name.startswith("train_ds-"))


def _step_of(prefix: str) -> int:
  m = re.search(r"-(\d+)$", prefix)
  return int(m.group(1)) if m else -1


def locate(path) -> Optional[str]:
  """The checkpoint prefix (`.../model.ckpt-1000000`) at `path` (a folder, or the
  prefix itself), or None when it is not a TensorFlow checkpoint."""
  path = epath.Path(path)
  try:
    if path.is_dir():
      if (path / "meta").exists() or t5x.locate(path) is not None:
        return None  # one of our own checkpoints, or a T5X one with its input state
      state = path / "checkpoint"
      if state.is_file():
        if not _is_tf_checkpoint_state(state):
          return None
        m = re.search(rb'model_checkpoint_path:\s*"([^"]+)"', state.read_bytes())
        if m:
          prefix = m.group(1).decode()
          # Relative as the T5 releases write it; an absolute one from the machine that
          # wrote it is looked for here too (a copied checkpoint), as TF does.
          if not prefix.startswith(("/", "gs://")) or \
              not epath.Path(prefix + ".index").exists():
            prefix = str(path / prefix.rsplit("/", 1)[-1])
          return prefix
      prefixes = _index_prefixes(path)
      return max(prefixes, key=_step_of) if prefixes else None
    if epath.Path(str(path) + ".index").is_file():
      return str(path)
  except OSError:
    return None
  return None


def detect(path) -> bool:
  return locate(path) is not None


def read(path, config=None) -> Imported:
  """Reads the Mesh-TF T5 checkpoint at `path` into our names for `config`."""
  prefix = locate(path)
  if prefix is None:
    raise CheckpointImportError(f"{path} is not a TensorFlow checkpoint: no `checkpoint` "
                                "index file and no `*.index`")
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  try:
    reader = tf.train.load_checkpoint(prefix)
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointImportError(f"Mesh-TF checkpoint {prefix}: cannot open it: {e}") from e
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  report = ImportReport()
  sources, slots = {}, []
  for name in sorted(shapes):
    if _SLOT.fullmatch(name):
      slots.append(name)
      continue
    if name == "global_step":
      report.ignored[name] = (f"the training step ({int(reader.get_tensor(name))}); "
                              "an import starts at 0")
      continue
    ours = rename(name)
    if ours is None:
      raise CheckpointImportError(f"Mesh-TF checkpoint {prefix}: tensor {name} "
                                  f"{tuple(shapes[name])} is not a T5 variable we know"
                                  + _hint(name))
    if ours in sources:
      raise CheckpointImportError(f"Mesh-TF checkpoint {prefix}: tensors "
                                  f"{sources[ours].name} and {name} both give {ours}")
    sources[ours] = t5_assembly.SourceTensor(name, tuple(shapes[name]), dtypes[name].name,
                                     lambda n=name: reader.get_tensor(n))
  if slots:
    kinds = sorted({_SLOT.fullmatch(s).group(1) for s in slots})
    report.ignored["*" + ", *".join(kinds)] = (f"Adafactor slot variables ({len(slots)} "
                                               "tensors): optimizer state")
  if config is None:
    match = t5_assembly.suggest_gin_file({n: t.shape for n, t in sources.items()})
    raise CheckpointImportError(
        f"Mesh-TF checkpoint {prefix}: it carries no model config of ours; pass one "
        "(python -m prosocial_jax.convert --gin_file=gin/models/...)"
        + (f"; its shapes are those of {match}" if match else ""))
  return t5_assembly.assemble(NAME, prefix, config, sources, report)
