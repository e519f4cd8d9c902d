"""The data layer: raw corpora in their release formats → checked records → examples.

  data_root.py     where corpora live (DATA_ROOT / $PROSOCIAL_JAX_DATA, one folder per corpus)
  readers/         one reader per corpus and release format (errors name file, record, field)
  examples/        records → (context, target) examples, in the formats of formatting.py
  formatting.py    the context and target formats, and their parsers
  download/        `python -m prosocial_jax.data download <corpus>|all`
  tfds_builder.py  the `prosocial_dialog` TFDS builder
  train_vocab.py   the SentencePiece vocabulary CLI
  synthetic.py     a synthetic data root in every release format (tests, benchmarks)

The SeqIO tasks built on it live in the top-level `tasks` package; docs/data.md
is the user's guide.
"""
