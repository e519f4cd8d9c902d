"""TensorBoard scalars land in event files on any file system TensorFlow knows."""
import tensorflow as tf

from prosocial_jax.training.metrics import ScalarWriter


def read_scalars(logdir):
  found = {}
  for path in tf.io.gfile.glob(f"{logdir}/events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        found[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
  return found


def test_scalars_round_trip_locally(tmp_path):
  board = ScalarWriter(str(tmp_path))
  board.add_scalar("train/loss", 2.5, 10)
  board.add_scalar("train/loss", 1.25, 20)
  board.close()
  assert read_scalars(str(tmp_path)) == {("train/loss", 10): 2.5, ("train/loss", 20): 1.25}


def test_scalars_go_through_tensorflows_file_systems():
  # ram:// stands for gs://: a path only TensorFlow's file system layer can write (a plain
  # open(), what tensorboardX falls back to without google-cloud-storage, cannot).
  board = ScalarWriter("ram://board/validation")
  board.add_scalar("validation/accuracy", 0.75, 3)
  board.close()
  assert read_scalars("ram://board/validation") == {("validation/accuracy", 3): 0.75}
