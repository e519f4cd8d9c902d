"""Outside T5 checkpoints written by the real libraries, from a tiny random Hugging Face T5.

transformers builds the model from a config (never the hub); its weights are then
written the way each outside stack writes them:

* T5X legacy: `checkpoint_<step>/checkpoint` msgpack ({'version', 'optimizer':
  {'target', 'state'}}, flax.serialization) plus one zarr array per parameter written
  by tensorstore, the msgpack holding each array's spec with a path relative to the
  step folder (t5x/checkpoints.py, VERSION 3), small arrays inline;
* T5X orbax: `checkpoint_<step>/state` by orbax's PyTreeCheckpointHandler (ocdbt), as
  T5X's OrbaxCheckpointManagerInterface saves {'target', 'state'};
* Mesh-TensorFlow: a TF checkpoint (tf.compat.v1 variables + Saver with the exact
  variable names), with Adafactor slot variables and global_step beside them.

Parameter names on the T5X side are t5x/examples/t5's; `scanned` stacks layers as
T5X's scanned models do (layer axis 1, t5x/examples/scalable_t5 and flaxformer).
"""

from __future__ import annotations

import json
import os

import numpy as np

VOCAB, D_MODEL, HEADS, D_KV, D_FF = 64, 16, 2, 8, 32
BUCKETS, MAX_DISTANCE = 8, 20

# Hugging Face sub-layer modules and our (T5X's) names for them, in block order.
_SUBLAYERS = {
    "encoder": (("SelfAttention", "attention", "pre_attention_layer_norm"),
                ("DenseReluDense", "mlp", "pre_mlp_layer_norm")),
    "decoder": (("SelfAttention", "self_attention", "pre_self_attention_layer_norm"),
                ("EncDecAttention", "encoder_decoder_attention", "pre_cross_attention_layer_norm"),
                ("DenseReluDense", "mlp", "pre_mlp_layer_norm")),
}
_QKVO = {"q": "query", "k": "key", "v": "value", "o": "out"}


SPIECE = os.path.join(os.path.dirname(__file__), "..", "..", "tasks", "vocab",
                      "prosocial_sample.model")


def random_t5(version: str, *, encoder_layers: int = 2, decoder_layers: int = 3,
              vocab: int = VOCAB, d_model: int = D_MODEL, output: str = "default",
              seed: int = 0):
  """A random T5ForConditionalGeneration: "1.0" ReLU, output tied to the embedding and
  scaled by d_model^-0.5; "1.1" gated GELU, own lm_head, unscaled. transformers 5 reads
  `tie_word_embeddings=False` given to T5Config as "no output scaling" and then ties
  anyway: it is set back after the config, as /work/shared/bench/t5_common.py does.
  output "tied_unscaled" (with "1.1") / "untied_scaled" (with "1.0"): the two mixed
  cases transformers can also run."""
  import torch
  import transformers
  torch.manual_seed(seed)
  fields = dict(vocab_size=vocab, d_model=d_model, d_kv=D_KV, d_ff=D_FF, num_heads=HEADS,
                num_layers=encoder_layers, num_decoder_layers=decoder_layers,
                relative_attention_num_buckets=BUCKETS,
                relative_attention_max_distance=MAX_DISTANCE, dropout_rate=0.0,
                decoder_start_token_id=0)
  if version == "1.0":
    config = transformers.T5Config(feed_forward_proj="relu", **fields)
  else:
    config = transformers.T5Config(feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                   **fields)
    if output == "default":
      config.tie_word_embeddings = False
  model = transformers.T5ForConditionalGeneration(config)
  if version == "1.1" and output == "default":
    model.encoder.embed_tokens.weight = model.shared.weight
    model.decoder.embed_tokens.weight = model.shared.weight
    assert model.lm_head.weight is not model.shared.weight
  with torch.no_grad():  # logits of order 1, as T5X initialises (HF: N(0, 1) output layer)
    if version == "1.1":
      model.lm_head.weight.normal_(0.0, d_model ** -0.5)
    if output == "untied_scaled":
      model.lm_head.weight = torch.nn.Parameter(torch.randn(vocab, d_model))
    for module in model.modules():  # norms away from 1.0, so a misplaced one shows
      if type(module).__name__ == "T5LayerNorm":
        module.weight.uniform_(0.5, 1.5)
  return model.eval()


def save_hf(model, directory, layout="safetensors"):
  """Writes `model` as a Hugging Face folder; returns its path. layout: "safetensors",
  "sharded" (safetensors + index), "bin" (a pytorch_model.bin holding every tied copy,
  as older checkpoints do) or "sharded_bin" (two .bin + index)."""
  import torch

  from prosocial_jax.checkpoints.importers import hf_weights
  directory = str(directory)
  if layout in ("bin", "sharded_bin"):
    model.config.save_pretrained(directory)
    state = model.state_dict()
    if layout == "bin":
      torch.save(state, os.path.join(directory, hf_weights.TORCH))
      return directory
    names = list(state)
    shards = {"pytorch_model-00001-of-00002.bin": names[:len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2:]}
    for shard, shard_names in shards.items():
      torch.save({n: state[n] for n in shard_names}, os.path.join(directory, shard))
    with open(os.path.join(directory, hf_weights.TORCH_INDEX), "w") as f:
      json.dump({"metadata": {}, "weight_map": {n: shard for shard, shard_names in shards.items()
                                                for n in shard_names}}, f)
  else:
    model.save_pretrained(directory, max_shard_size=4000 if layout == "sharded" else "50GB")
  return directory


def our_config(model, *, scan_layers: bool = False):
  from prosocial_jax.models import t5_1_0_config, t5_1_1_config
  c = model.config
  fields = dict(vocab_size=c.vocab_size, emb_dim=c.d_model, num_heads=c.num_heads,
                head_dim=c.d_kv, mlp_dim=c.d_ff, num_encoder_layers=c.num_layers,
                num_decoder_layers=c.num_decoder_layers,
                relative_attention_num_buckets=c.relative_attention_num_buckets,
                relative_attention_max_distance=c.relative_attention_max_distance,
                scan_layers=scan_layers)
  gated = c.feed_forward_proj.startswith("gated")
  return (t5_1_1_config if gated else t5_1_0_config)("small", **fields)


def _hf_weights(model) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def t5x_target(model) -> dict[str, np.ndarray]:
  """The model's weights under T5X's unscanned names (the `target` tree, flattened by '/')."""
  w = _hf_weights(model)
  c = model.config
  out = {"token_embedder/embedding": w["shared.weight"]}
  for stack, layers in (("encoder", c.num_layers), ("decoder", c.num_decoder_layers)):
    # nn.Embedding [buckets, heads]; T5X's table is [heads, buckets].
    out[f"{stack}/relpos_bias/rel_embedding"] = w[
        f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].T
    for i in range(layers):
      for k, (module, ours, norm) in enumerate(_SUBLAYERS[stack]):
        hf = f"{stack}.block.{i}.layer.{k}"
        t5x = f"{stack}/layers_{i}"
        out[f"{t5x}/{norm}/scale"] = w[f"{hf}.layer_norm.weight"]
        if module == "DenseReluDense":
          for part in ("wi", "wi_0", "wi_1", "wo"):
            if f"{hf}.DenseReluDense.{part}.weight" in w:  # torch Linear is [out, in]
              out[f"{t5x}/mlp/{part}/kernel"] = w[f"{hf}.DenseReluDense.{part}.weight"].T
        else:
          for part, name in _QKVO.items():
            out[f"{t5x}/{ours}/{name}/kernel"] = w[f"{hf}.{module}.{part}.weight"].T
    norm = "encoder_norm" if stack == "encoder" else "decoder_norm"
    out[f"{stack}/{norm}/scale"] = w[f"{stack}.final_layer_norm.weight"]
  if not model.config.tie_word_embeddings:  # v1.1's own output layer [vocab, d] -> [d, vocab]
    out["decoder/logits_dense/kernel"] = w["lm_head.weight"].T
  return out


def scanned(target: dict[str, np.ndarray], *, module: str = "stack", axis: int = 1,
            split_heads: bool = False, relpos_per_layer: bool = False) -> dict[str, np.ndarray]:
  """`target` with each stack's layers stacked on `axis` under `<stack>/<stack>/...`
  (module "stack": scalable_t5 / flaxformer) or `<stack>/layers/...` ("layers": ours).
  `split_heads`: attention kernels [embed, heads, head_dim] / [heads, head_dim, embed]
  (scalable_t5); `relpos_per_layer`: a copy of the stack's relative bias in every
  layer (scanned flaxformer / scalable_t5 models have one per layer)."""
  out = {}
  for name, array in target.items():
    if not name.startswith(("encoder/layers_", "decoder/layers_")):
      if not (relpos_per_layer and name.endswith("relpos_bias/rel_embedding")):
        out[name] = array
  for stack in ("encoder", "decoder"):
    layers = sorted({int(n.split("/")[1][7:]) for n in target if n.startswith(f"{stack}/layers_")})
    rests = sorted({n.split("/", 2)[2] for n in target if n.startswith(f"{stack}/layers_0/")})
    if relpos_per_layer:
      rests.append("relpos_bias/rel_embedding")
    scope = stack if module == "stack" else "layers"
    for rest in rests:
      per_layer = []
      for i in layers:
        array = (target[f"{stack}/relpos_bias/rel_embedding"]
                 if rest == "relpos_bias/rel_embedding" else target[f"{stack}/layers_{i}/{rest}"])
        if split_heads and rest.endswith(("query/kernel", "key/kernel", "value/kernel")):
          array = array.reshape(array.shape[0], HEADS, -1)
        elif split_heads and rest.endswith("out/kernel"):
          array = array.reshape(HEADS, -1, array.shape[-1])
        per_layer.append(array)
      out[f"{stack}/{scope}/{rest}"] = np.stack(per_layer, axis=axis)
  return out


def nested(flat: dict[str, object]) -> dict:
  """'a/b/c' names -> a nested tree."""
  from flax import traverse_util
  return traverse_util.unflatten_dict(flat, sep="/")


def adafactor_states(target: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Flax Adafactor's per-parameter state (factored v_row / v_col, else v), as T5X keeps
  it under state/param_states."""
  out = {}
  for name, array in target.items():
    if array.ndim >= 2:
      out[f"{name}/v_row"] = np.full(array.shape[:-1], 0.1, np.float32)
      out[f"{name}/v_col"] = np.full(array.shape[-1:], 0.2, np.float32)
      out[f"{name}/v"] = np.zeros((1,), np.float32)
    else:
      out[f"{name}/v"] = np.full(array.shape, 0.3, np.float32)
  return out


def write_t5x_legacy(model_dir, target: dict[str, np.ndarray], *, step: int = 1000,
                     inline=(), bfloat16=(), version: int = 3) -> str:
  """A T5X legacy checkpoint in `model_dir/checkpoint_<step>`; returns that folder.

  `inline`: names kept in the msgpack (T5X does so for arrays without partitioning
  axes); the rest are zarr arrays written by tensorstore. `bfloat16`: names stored as
  bfloat16 (T5X's save_dtype); version 2 stored those as uint16 bits."""
  import ml_dtypes
  import tensorstore as ts
  from flax import serialization
  step_dir = os.path.join(str(model_dir), f"checkpoint_{step}")
  os.makedirs(step_dir)

  def leaf(key: str, array: np.ndarray, dtype: str):
    array = np.asarray(array)
    if dtype == "bfloat16":
      array = array.astype(ml_dtypes.bfloat16)
      if version == 2:
        array, dtype = array.view(np.uint16), "uint16"
    relative = key.replace("/", ".")
    spec = {"driver": "zarr", "dtype": dtype, "kvstore": {"driver": "file", "path": relative},
            "metadata": {"compressor": {"id": "gzip"}, "shape": list(array.shape),
                         "chunks": list(array.shape)}}
    absolute = json.loads(json.dumps(spec))
    absolute["kvstore"]["path"] = os.path.join(step_dir, relative)
    store = ts.open(absolute, create=True, open=True).result()
    store.write(array).result()
    return ts.Spec(spec).to_json()  # the relative spec, as T5X keeps it

  written = {}
  for name, array in target.items():
    key = f"target/{name}"
    written[name] = (np.asarray(array) if name in inline else
                     leaf(key, array, "bfloat16" if name in bfloat16 else "float32"))
  states = adafactor_states(target)
  state = {"step": np.int32(step), "param_states": nested({
      n: (leaf(f"state/param_states/{n}", a, "float32") if n.endswith("v_row") else a)
      for n, a in states.items()})}
  contents = {"version": version, "optimizer": {"target": nested(written), "state": state}}
  with open(os.path.join(step_dir, "checkpoint"), "wb") as f:
    f.write(serialization.msgpack_serialize(contents))
  return step_dir


def write_t5x_orbax(model_dir, target: dict[str, np.ndarray], *, step: int = 1000) -> str:
  """A T5X orbax checkpoint (`model_dir/checkpoint_<step>/state`), saved as T5X's
  OrbaxCheckpointManagerInterface does; returns the step folder."""
  import orbax.checkpoint as ocp
  state = {"target": nested(dict(target)),
           "state": {"step": np.int32(step), "param_states": nested(adafactor_states(target))}}
  options = ocp.CheckpointManagerOptions(step_prefix="checkpoint", create=True)
  with ocp.CheckpointManager(str(model_dir), options=options, item_handlers={
      "state": ocp.PyTreeCheckpointHandler(use_ocdbt=True)}) as manager:
    manager.save(step, args=ocp.args.Composite(state=ocp.args.PyTreeSave(state)))
    manager.wait_until_finished()
  return os.path.join(str(model_dir), f"checkpoint_{step}")


def mesh_tf_variables(model) -> dict[str, np.ndarray]:
  """The model's weights under Mesh-TensorFlow T5's variable names."""
  target = t5x_target(model)
  out = {"shared/embedding": target["token_embedder/embedding"]}
  c = model.config
  for stack, layers in (("encoder", c.num_layers), ("decoder", c.num_decoder_layers)):
    out[f"{stack}/block_000/layer_000/SelfAttention/relative_attention_bias"] = target[
        f"{stack}/relpos_bias/rel_embedding"]
    for i in range(layers):
      for k, (module, ours, norm) in enumerate(_SUBLAYERS[stack]):
        mtf = f"{stack}/block_{i:03d}/layer_{k:03d}"
        t5x = f"{stack}/layers_{i}"
        out[f"{mtf}/layer_norm/scale"] = target[f"{t5x}/{norm}/scale"]
        if module == "DenseReluDense":
          for part in ("wi", "wi_0", "wi_1", "wo"):
            if f"{t5x}/mlp/{part}/kernel" in target:
              out[f"{mtf}/DenseReluDense/{part}/kernel"] = target[f"{t5x}/mlp/{part}/kernel"]
        else:
          for part, name in _QKVO.items():
            out[f"{mtf}/{module}/{part}"] = target[f"{t5x}/{ours}/{name}/kernel"]
    norm = "encoder_norm" if stack == "encoder" else "decoder_norm"
    out[f"{stack}/final_layer_norm/scale"] = target[f"{stack}/{norm}/scale"]
  if "decoder/logits_dense/kernel" in target:
    out["decoder/logits/kernel"] = target["decoder/logits_dense/kernel"]
  return out


def write_mesh_tf(directory, variables: dict[str, np.ndarray], *, step: int = 1000,
                  bfloat16=(), slots: bool = True) -> str:
  """A TensorFlow checkpoint `directory/model.ckpt-<step>` (+ the `checkpoint` index)
  holding `variables` by their exact names, as Mesh-TF's Saver does; `slots` adds
  Adafactor's slot variables (factored `_slot_vr` / `_slot_vc`, else `_slot_v`) and
  `global_step`. Returns the checkpoint prefix."""
  import tensorflow as tf
  all_vars = dict(variables)
  if slots:
    for name, array in variables.items():
      if array.ndim == 2:
        all_vars[f"{name}_slot_vr"] = np.full(array.shape[:1], 0.1, np.float32)
        all_vars[f"{name}_slot_vc"] = np.full(array.shape[1:], 0.2, np.float32)
      else:
        all_vars[f"{name}_slot_v"] = np.full(array.shape, 0.3, np.float32)
  graph = tf.Graph()
  with graph.as_default():
    var_list = {}
    for i, (name, array) in enumerate(all_vars.items()):
      value = tf.constant(np.asarray(array, np.float32))
      if name in bfloat16:
        value = tf.cast(value, tf.bfloat16)
      var_list[name] = tf.compat.v1.Variable(value, name=f"v{i}")
    if slots:
      var_list["global_step"] = tf.compat.v1.Variable(np.int64(step), name="global_step")
    saver = tf.compat.v1.train.Saver(var_list=var_list)
    with tf.compat.v1.Session(graph=graph) as session:
      session.run(tf.compat.v1.global_variables_initializer())
      return saver.save(session, os.path.join(str(directory), "model.ckpt"), global_step=step)


def batch(vocab: int = VOCAB):
  """Encoder inputs with padding, unpadded targets (token 0 = pad / decoder start)."""
  rng = np.random.default_rng(0)
  inputs = rng.integers(2, vocab, (3, 9)).astype(np.int32)
  inputs[0, 6:] = 0
  inputs[1, 4:] = 0
  targets = rng.integers(2, vocab, (3, 7)).astype(np.int32)
  decoder_inputs = np.concatenate([np.zeros((3, 1), np.int32), targets[:, :-1]], axis=1)
  return {"encoder_input_tokens": inputs, "decoder_input_tokens": decoder_inputs,
          "decoder_target_tokens": targets,
          "decoder_loss_weights": np.ones_like(targets, np.float32)}


def hf_logits(model, batch) -> np.ndarray:
  import torch
  with torch.no_grad():
    inputs = torch.tensor(batch["encoder_input_tokens"], dtype=torch.long)
    out = model(input_ids=inputs, attention_mask=(inputs != 0).long(),
                decoder_input_ids=torch.tensor(batch["decoder_input_tokens"], dtype=torch.long))
  return out.logits.numpy()


def params_of(imported) -> dict:
  """The imported tensors as a parameter tree; each name must come exactly once."""
  flat = {}
  for name, array in imported.tensors():
    assert name not in flat, f"{name} yielded twice"
    assert array.dtype == np.float32, (name, array.dtype)
    flat[name] = array
  return nested(flat)


def round_to_bfloat16_(parameter) -> None:
  """Rounds a torch parameter to bfloat16 in place, so a bfloat16 copy of it is exact."""
  import torch
  with torch.no_grad():
    parameter.copy_(parameter.to(torch.bfloat16).to(torch.float32))
