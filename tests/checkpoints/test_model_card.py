"""README.md of an export: what the model is, its run, the latest metrics up to its step."""

import json

import pytest

from prosocial_jax.checkpoints.exporters import model_card
from prosocial_jax.checkpoints.stored import StoredCheckpoint
from prosocial_jax.models.prost.config import ProstConfig
from prosocial_jax.models.t5.config import T5Config

T5 = T5Config(vocab_size=1024, emb_dim=64, num_heads=2, head_dim=32, mlp_dim=128,
              num_encoder_layers=2, num_decoder_layers=2)
PROST = ProstConfig(vocab_size=1024, emb_dim=64, num_heads=2, head_dim=32, mlp_dim=128,
                    num_encoder_layers=1, num_decoder_layers=2)


def _metrics(model_dir, lines):
  (model_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _stored(model_dir, step, name, config=T5, **meta):
  meta = {"input": {"mixture_or_task_name": name, "task_feature_lengths":
                    {"inputs": 192, "targets": 48}, "batch_size": 8,
                    "data": {name: {"examples": 106}}},
          "param_shapes": {"token_embedder/embedding": [1024, 64], "x/scale": [64]},
          "code": {"version": "0.1.0", "git_commit": "2e845c0b286e45fe66a3", "git_dirty": False},
          **meta}
  return StoredCheckpoint(model_dir=str(model_dir), step=step, meta=meta, config=config,
                          vocabulary={})


def _front_matter(card):
  assert card.startswith("---\n")
  return card.split("---\n")[1]


def test_canary_card_reports_the_step_metrics_caveat_and_citation(tmp_path):
  _metrics(tmp_path, [
      {"step": 100, "loss": 3.0},
      {"step": 200, "eval/perplexity": 12.5, "eval/prosocial_dialog_canary/safety_accuracy": 41.25,
       "eval/prosocial_dialog_canary/safety_confusion/__casual__/__casual__": 3.0},
      {"step": 250, "loss": 1.0},
      {"step": 300, "eval/perplexity": 9.75},
      {"step": 400, "eval/perplexity": 1.0625, "eval/prosocial_dialog_canary/safety_accuracy": 99.5},
  ])
  (tmp_path / "eval").mkdir()  # evaluation records, as `python -m prosocial_jax.eval` writes
  records = {"step300": (300, "validation", None, {"perplexity": 8.5, "rot_f1": 20.5}),
             "step300-first8": (300, "validation", 8, {"rot_f1": 77.0}),  # a subset
             "step250": (250, "test", None, {"safety_accuracy": 61.0}),
             "step400": (400, "validation", None, {"perplexity": 0.5})}
  for name, (step, split, first, values) in records.items():
    (tmp_path / "eval" / f"prosocial_dialog_canary-{split}-{name}.json").write_text(json.dumps(
        {"step": step, "split": split, "max_examples": first,
         "metrics": {"prosocial_dialog_canary": values}}))
  (tmp_path / "eval" / "broken.json").write_text("{")
  (tmp_path / "out").mkdir()
  path = model_card.write_model_card(_stored(tmp_path, 300, "prosocial_dialog_canary"),
                                     str(tmp_path / "out"))
  assert path == str(tmp_path / "out" / "README.md")
  card = open(path).read()
  front = _front_matter(card)
  for line in ("license: apache-2.0", "- en", "pipeline_tag: text2text-generation",
               "- allenai/prosocial-dialog", "- dialogue-safety"):
    assert line in front
  assert "# Canary" in card and "safety label" in card
  assert "| steps | 300 |" in card and "`prosocial_dialog_canary`" in card
  assert "none: trained from scratch" in card
  assert "| perplexity | 9.75 | 300 |" in card  # the latest at or before step 300
  assert "| prosocial_dialog_canary/safety_accuracy | 41.25 | 200 |" in card
  # One row per metric: the record's values under the training log's names.
  assert "| prosocial_dialog_canary/perplexity | 8.5 | 300 |" in card
  assert "| prosocial_dialog_canary/rot_f1 | 20.5 | 300 |" in card
  assert "| test/prosocial_dialog_canary/safety_accuracy | 61 | 250 |" in card
  assert "77.0 |" not in card and "| 77 |" not in card and "inference_eval" not in card
  assert "safety_confusion" not in card  # the matrix's cells are counts, not results
  for later in ("1.0625", "99.5", "| 0.5 |", "12.5"):  # after step 300, or superseded
    assert later not in card
  assert "not a filter of record" in card and "not universal" in card
  assert "@inproceedings{kim2022prosocialdialog" in card
  assert "ProsocialDialog: A Prosocial Backbone for Conversational Agents" in card
  assert "CC-BY-4.0" in card  # the data's licence
  assert "`T5ForConditionalGeneration`" in card
  assert f"{1024 * 64 + 64:,} parameters" in card


def test_prost_mixture_card_lists_rates_and_base_checkpoint(tmp_path):
  (tmp_path / "config.gin").write_text(
      "INITIAL_CHECKPOINT_PATH = 'gs://bucket/blenderbot_3B_converted'\n")
  card = model_card.model_card(_stored(tmp_path, 1000, "prost_mixture", config=PROST))
  assert "# Prost" in card and "`RoT: <RoTs> Response: <response>`" in card
  # DailyDialog (CC BY-NC-SA) and EmpatheticDialogues (CC BY-NC) are in the mixture.
  assert "license: other" in _front_matter(card) and "CC BY-NC-SA 4.0" in card
  assert "`gs://bucket/blenderbot_3B_converted` (INITIAL_CHECKPOINT_PATH)" in card
  pytest.importorskip("seqio")
  assert "| `prosocial_dialog_prost_rot_response` | 9 | 36.0% |" in card  # 9 / 25
  assert "| `blended_skill_talk_prost` | 1 | 4.0% |" in card
  assert "- blenderbot" in _front_matter(card) and "`BlenderbotForConditionalGeneration`" in card
  assert "CC BY-NC-SA 4.0" in card  # DailyDialog's terms, a corpus of the mixture
  assert "not a safe or reliable assistant" in card
  assert "No evaluation metrics were recorded at or before step 1000." in card


def test_converted_checkpoint_and_no_tasks(tmp_path, monkeypatch):
  """Without the tasks package the card names the mixture; a converted checkpoint
  names its source."""
  real_import = model_card.importlib.import_module

  def no_tasks(name, *args):
    if name == "tasks":
      raise ImportError("no module named tasks")
    return real_import(name, *args)

  monkeypatch.setattr(model_card.importlib, "import_module", no_tasks)
  stored = _stored(tmp_path, 0, "canary_mixture",
                   imported_from={"format": "hf_t5", "source": "google/t5-v1_1-large"})
  card = model_card.model_card(stored)
  assert "converted from `google/t5-v1_1-large` (hf_t5)" in card
  assert "`canary_mixture`" in card and "Mixture rates" not in card
  assert "- allenai/prosocial-dialog" in _front_matter(card)


@pytest.mark.parametrize("name, role", [
    ("canary_mixture", "canary"), ("daily_dialog_canary", "canary"),
    ("prosocial_dialog_safety", "safety"), ("toxichat_safety", "safety"),
    ("social_chem_101_rot", "norms"), ("commonsense_norm_bank_judgment", "norms"),
    ("prosocial_dialog_rot", "norms"), ("prost_response_mixture", "prost_response"),
    ("prosocial_dialog_prost_gold_rot", "prost_gold_rot"), ("persona_chat_prost", "prost_rot_response"),
])
def test_role_of(name, role):
  assert model_card.role_of(name, "t5") == role


def test_a_converted_checkpoint_never_trained_here_is_not_called_canary_or_prost(tmp_path):
  stored = _stored(tmp_path, 0, "ignored", config=PROST,
                   imported_from={"format": "hf_blenderbot", "source": "/ckpt/blenderbot"})
  del stored.meta["input"]
  card = model_card.model_card(stored)
  assert "# Dialogue model" in card and "# Prost" not in card
  assert "/ckpt/blenderbot" in card  # the base checkpoint
