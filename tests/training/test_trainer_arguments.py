"""`train(...)` rejects bad settings before it reads any data or builds a model."""

import pytest

from prosocial_jax.training.trainer import train


def test_unknown_eval_decode_weights_fail_first(tmp_path):
  with pytest.raises(ValueError, match=r"train.eval_decode_weights must be one of "
                                       r"\('float32', 'bfloat16', 'int8'\) or None, got 'fp8'"):
    train(model_dir=str(tmp_path / "run"), mixture_or_task_name="no_such_task",
          task_feature_lengths={"inputs": 8, "targets": 8}, train_steps=1, batch_size=1,
          model_config=None, optimizer=None, eval_decode_weights="fp8")
  assert not (tmp_path / "run").exists()  # nothing was written
