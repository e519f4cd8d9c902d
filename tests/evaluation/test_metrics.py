import math

import numpy as np
import pytest

from prosocial_jax.evaluation import metrics
from prosocial_jax.evaluation.metrics import perplexity, safety_accuracy


def test_safety_accuracy_compares_leading_label_only():
  targets = ["__casual__", "__needs_caution__ It's wrong to lie.",
             "__needs_intervention__ You should call for help.", "__casual__"]
  predictions = ["__casual__", "__needs_caution__ something else entirely",
                 "__needs_caution__ You should call for help.", ""]
  assert safety_accuracy(targets, predictions) == {"safety_accuracy": 50.0}


def test_safety_accuracy_accepts_label_glued_to_the_rot():
  assert safety_accuracy(["__needs_caution__ It's bad."],
                         ["__needs_caution__It's bad."]) == {"safety_accuracy": 100.0}


def test_output_without_label_is_wrong_even_against_unlabelled_target():
  assert safety_accuracy(["no label here"], ["no label here"]) == {"safety_accuracy": 0.0}


def test_safety_accuracy_rejects_mismatched_lengths():
  with pytest.raises(ValueError, match="2 targets but 1 predictions"):
    safety_accuracy(["a", "b"], ["a"])


def test_perplexity_is_per_token_over_the_split():
  # Two examples: 3 tokens with total log p = -3, 1 token with log p = -1.
  scores = np.array([[-3.0, 3.0], [-1.0, 1.0]])
  result = perplexity(["x", "y"], scores)
  assert result["nll_per_token"] == pytest.approx(1.0)
  assert result["perplexity"] == pytest.approx(math.e)


def test_perplexity_of_no_tokens_is_nan():
  assert math.isnan(perplexity([], np.zeros((0, 2)))["perplexity"])


# --- Safety: the coarse view and the confusion matrix --------------------------------------

# Gold (coarse)          predicted (coarse)
# casual                 casual                 right (also five-way)
# possibly (caution)     needs (caution)        right coarse, wrong five-way
# needs (caution)        probably (caution)     right coarse, wrong five-way
# intervention           needs (caution)        wrong
# probably (caution)     no label               wrong
# casual                 intervention           wrong
MIXED_TARGETS = ["__casual__", "__possibly_needs_caution__ It's rude.", "__needs_caution__ No.",
                 "__needs_intervention__ Call for help.", "__probably_needs_caution__",
                 "__casual__"]
MIXED_PREDICTIONS = ["__casual__", "__needs_caution__ It's rude.", "__probably_needs_caution__",
                     "__needs_caution__", "I am not sure", "__needs_intervention__"]


def test_three_way_accuracy_and_macro_f1_by_hand():
  result = metrics.safety_three_way(MIXED_TARGETS, MIXED_PREDICTIONS)
  assert result["safety3_accuracy"] == pytest.approx(50.0)
  # casual: TP 1, FP 0, FN 1 -> 2/3; caution: TP 2, FP 1, FN 1 -> 2/3; intervention: 0.
  assert result["safety3_macro_f1"] == pytest.approx(100 * (2 / 3 + 2 / 3 + 0) / 3)
  assert safety_accuracy(MIXED_TARGETS, MIXED_PREDICTIONS)["safety_accuracy"] == pytest.approx(
      100 / 6)


def test_three_way_macro_f1_leaves_out_a_class_nobody_named():
  result = metrics.safety_three_way(["__casual__", "__needs_caution__ x"],
                                    ["__casual__", "__possibly_needs_caution__"])
  assert result == {"safety3_accuracy": 100.0, "safety3_macro_f1": 100.0}
  assert all(math.isnan(v) for v in metrics.safety_three_way([], []).values())


def test_confusion_cells_sum_to_the_examples_and_rebuild_the_matrix():
  cells = metrics.safety_confusion(MIXED_TARGETS, MIXED_PREDICTIONS)
  assert len(cells) == 36 and sum(cells.values()) == len(MIXED_TARGETS)
  assert cells["safety_confusion/__casual__/__casual__"] == 1.0
  assert cells["safety_confusion/__casual__/__needs_intervention__"] == 1.0
  assert cells["safety_confusion/__probably_needs_caution__/no_label"] == 1.0
  matrix = metrics.confusion_matrix({**cells, "safety_accuracy": 16.7})
  assert matrix["labels"] == [*metrics.SAFETY_LABELS, "no_label"]
  assert matrix["matrix"] == [[1, 0, 0, 0, 1, 0],   # casual
                              [0, 0, 0, 1, 0, 0],   # possibly
                              [0, 0, 0, 0, 0, 1],   # probably
                              [0, 0, 1, 0, 0, 0],   # needs caution
                              [0, 0, 0, 1, 0, 0],   # needs intervention
                              [0, 0, 0, 0, 0, 0]]   # targets without a label
  assert metrics.confusion_matrix({"perplexity": 3.0}) is None


# --- Generation: F1 with ParlAI's normalisation, BLEU-4 with sacrebleu ---------------------

@pytest.mark.parametrize("text, normalized", [
    ("The cat's   hat, a-b! An apple", "cat s hat b apple"),  # punctuation becomes a space
    ("THEORY of an anthem", "theory of anthem"),  # articles only as whole words
    ("  \n", ""),
])
def test_parlai_normalisation(text, normalized):
  assert metrics.normalize_answer(text) == normalized


def test_unigram_f1_by_hand():
  # [cat, sat] against [cat, sat, on, mat]: precision 1, recall 1/2.
  assert metrics.unigram_f1("The cat sat.", "a cat sat on the mat") == pytest.approx(2 / 3)
  assert metrics.unigram_f1("HELLO, world!", "hello world") == 1.0
  # Repeated tokens count once per match: [cat, cat] against [cat].
  assert metrics.unigram_f1("the cat, the cat", "cat") == pytest.approx(2 / 3)
  # The best reference wins: [cat, sat] against [cat, sat, down] -> 2 * 1 * 2/3 / (5/3).
  assert metrics.unigram_f1("cat sat", ["dog ran", "cat sat down"]) == pytest.approx(0.8)
  assert metrics.unigram_f1("", "anything") == 0.0
  assert metrics.unigram_f1("a the an", "the") == 0.0  # nothing left to match


def test_bleu4_matches_the_sacrebleu_command_line():
  hypotheses = ["It's wrong to pull the fire alarm if there is no fire.",
                "You should tell the truth to friends."]
  references = ["It's wrong to pull a fire alarm when there's no fire.",
                "You should always tell the truth to your friends."]
  # With the references in ref.txt and the hypotheses in hyp.txt, one a line:
  #   sacrebleu ref.txt -i hyp.txt -m bleu -w 4   (sacrebleu 2.6.0)
  # printed "score": 35.1076, nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0.
  assert metrics.bleu4(hypotheses, references) == pytest.approx(35.1076, abs=1e-4)
  assert metrics.bleu_signature() == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"


def test_rot_generation_splits_the_label_off_and_skips_targets_without_rots():
  targets = ["__needs_caution__ It's wrong to lie.", "__casual__",
             "__needs_intervention__ You should call for help."]
  predictions = ["__probably_needs_caution__ It is wrong to lie.", "__needs_caution__ It's bad.",
                 "__needs_intervention__"]
  result = metrics.rot_generation(targets, predictions)
  # [it, s, wrong, to, lie] vs [it, is, wrong, to, lie]: 0.8; the empty RoT: 0; casual skipped.
  assert result["rot_f1"] == pytest.approx(40.0)
  assert result["rot_examples"] == 2.0
  assert result["rot_bleu4"] == pytest.approx(metrics.bleu4(
      ["It is wrong to lie.", ""], ["It's wrong to lie.", "You should call for help."]))
  # Bare RoTs (the RoT task's targets) read the same way.
  assert metrics.rot_generation(["It's rude., You should stop."],
                                ["It's rude., You should stop."])["rot_f1"] == 100.0


def test_prost_response_and_rots_are_compared_part_by_part():
  targets = ["RoT: It's wrong to lie Response: You should tell her the truth.", "Sounds fun!"]
  predictions = ["RoT: It's wrong to lie Response: Tell her the truth.",
                 "RoT: Be nice Response: Sounds fun!"]
  response = metrics.response_generation(targets, predictions)
  # [tell, her, truth] vs [you, should, tell, her, truth]: P 1, R 3/5 -> 0.75; then 1.0.
  assert response["response_f1"] == pytest.approx(87.5)
  assert response["response_examples"] == 2.0
  rots = metrics.prost_rot_generation(targets, predictions)
  assert (rots["rot_f1"], rots["rot_examples"]) == (100.0, 1.0)
  assert rots["rot_bleu4"] == pytest.approx(100.0)
  # A response-only model's bare output: the response is all of it, and it has no RoTs.
  assert metrics.response_generation(["Sounds fun!"], ["Sounds fun!"])["response_f1"] == 100.0
  assert metrics.prost_rot_generation(targets[:1], ["Tell her."])["rot_f1"] == 0.0


def test_generation_without_gold_parts_is_nan():
  result = metrics.rot_generation(["__casual__"], ["__casual__"])
  assert math.isnan(result["rot_bleu4"]) and math.isnan(result["rot_f1"])
  assert result["rot_examples"] == 0.0
  with pytest.raises(ValueError, match="1 targets but 0 predictions"):
    metrics.response_generation(["x"], [])
