"""The ways a model conversion fails, each with a message that says what to do."""

from __future__ import annotations


class ConversionError(Exception):
    """A conversion failed; the message says what failed and what to do about it."""


class CacheWriteError(ConversionError):
    """The converted model could not be written (the disk is full or read-only): the checkpoint is fine."""


class CorruptModelError(RuntimeError):
    """A converted model's weights differ from what its build wrote; the message says how to rebuild."""
