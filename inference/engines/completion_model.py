"""What the pipelines and the server ask of a model, local (CodeModel) or remote (RemoteCodeModel)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..models.presets import Preset
from .stream import StopPredicate, TextStream

if TYPE_CHECKING:
    from ..completion.prompt import CompletionPrompt
    from .tokenizer import CodeTokenizer


class CapabilityError(ValueError):
    """The model cannot do what was asked (e.g. summarize with a decoder-only model)."""


class CompletionModel(Protocol):
    """A loaded model: `load_model` (inference.engines.loading) returns one."""

    preset: Preset
    device: str
    compute_type: str
    tokenizer: CodeTokenizer | None  # None: the model tokenizes text itself (a server's)

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
        """Stream the code that continues `prefix`; its text always continues `prefix` exactly.
        `generate` on the `completion_prompt`."""
        ...

    def generate(self, prompt: CompletionPrompt, *, stop: StopPredicate | None = None) -> TextStream:
        """Stream the continuation of a ready prompt (inference.completion.prompt); its text always
        continues the prompt's prefix exactly."""
        ...

    def summarize(self, code: str, *, max_new_tokens: int = 48) -> TextStream:
        """Stream a natural-language summary of `code`; CapabilityError if the model cannot."""
        ...
