"""The exporter's one error type, in its own module so that the package and its
parts (tokenizer.py, ...) can all raise it without importing each other."""

from __future__ import annotations


class ExportError(ValueError):
  """A checkpoint cannot be exported; the message says why (family, tensor, folder)."""
