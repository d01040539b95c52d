"""What the pipelines and the server ask of a model, local (CodeModel) or remote (RemoteCodeModel)."""

from __future__ import annotations

from typing import Protocol

from ..models.presets import Preset
from .stream import StopPredicate, TextStream


class CapabilityError(ValueError):
    """The model cannot do what was asked (e.g. summarize with a decoder-only model)."""


class CompletionModel(Protocol):
    """A loaded model: `load_model` (inference.engines.loading) returns one."""

    preset: Preset
    device: str
    compute_type: str

    @property
    def can_complete(self) -> bool: ...

    @property
    def can_summarize(self) -> bool: ...

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in `text` (an estimate where the tokenizer is not at hand)."""
        ...

    def complete(
        self, prefix: str, suffix: str = "", *, max_new_tokens: int = 48, stop: StopPredicate | None = None,
        max_context_tokens: int | None = None,
    ) -> TextStream:
        """Stream the code that continues `prefix`; its text always continues `prefix` exactly."""
        ...

    def summarize(self, code: str, *, max_new_tokens: int = 48) -> TextStream:
        """Stream a natural-language summary of `code`; CapabilityError if the model cannot."""
        ...
