"""TensorBoard scalars through TensorFlow's own summary writer.

TensorFlow is a dependency already (SeqIO's input pipeline), and its file
system layer writes `gs://` (and every other path `tf.io.gfile` knows) itself,
so a MODEL_DIR on GCS needs no extra package: tensorboardX, used before, needed
google-cloud-storage for that and failed without it.
"""

from __future__ import annotations


class ScalarWriter:
  """Event files in `logdir`, one scalar at a time; `close()` flushes them.

  Scalars are written as TensorBoard's scalars plugin stores them (a float32
  tensor tagged with the plugin's name), through `tf.summary.write`, which,
  unlike `tf.summary.scalar`, does not need the tensorboard package installed.
  """

  def __init__(self, logdir: str):
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2
    self._tf = tf
    self._writer = tf.summary.create_file_writer(logdir)
    self._metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))

  def add_scalar(self, tag: str, value: float, step: int) -> None:
    with self._writer.as_default():
      self._tf.summary.write(tag, self._tf.constant(float(value), self._tf.float32),
                             step=int(step), metadata=self._metadata)

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
