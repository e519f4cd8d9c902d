import math

import numpy as np
import pytest

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
