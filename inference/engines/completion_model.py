"""What the pipelines and the server ask of a model, local (CodeModel) or remote (RemoteCodeModel)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..models.presets import Preset, PromptFormat
from ..models.prompt_formats import DecoderPrompt, EncoderDecoderPrompt
from .stream import StopPredicate, TextStream

if TYPE_CHECKING:
    from .tokenizer import CodeTokenizer


class CapabilityError(ValueError):
    """The model cannot do what was asked (e.g. summarize with a decoder-only model)."""


@dataclass(frozen=True)
class CompletionPrompt:
    """One completion's prompt: what was asked (the text around the cursor, the budget) and what
    the engine runs (`model_input`, in `format`)."""

    prefix: str
    suffix: str
    max_new_tokens: int
    context_tokens: int  # prompt and new tokens fit in this many tokens (at most the model's window)
    format: PromptFormat  # the layout: the preset's completion format, or its infill format
    cut: str  # the text healing cut from `prefix`: the first generated token must re-create it
    new_tokens: int  # tokens to generate: `max_new_tokens` and those that re-create the cut
    model_input: DecoderPrompt | EncoderDecoderPrompt | str  # str: the healed prefix, for a model that tokenizes it
    context: list[int]  # the ids the generated ones follow (how the first of them decodes)


class CompletionModel(Protocol):
    """A loaded model: `load_model` (inference.engines.loading) returns one."""

    preset: Preset
    device: str
    compute_type: str
    runtime: str  # what runs it: "onnxruntime", "ctranslate2", "transformers" or "openai" (a server)
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
        """Stream the continuation of a ready prompt (`inference.completion.prompt` builds it); its text always
        continues the prompt's prefix exactly."""
        ...

    def summarize(self, code: str, *, max_new_tokens: int = 48) -> TextStream:
        """Stream a natural-language summary of `code`; CapabilityError if the model cannot."""
        ...

    def release_cached_prompts(self) -> int:
        """Free the memory of the prompts the model keeps cached for reuse (their KV state) now;
        how many there were (0 for a model without such a cache). Never while a generation runs:
        the runtime reloads the model to empty its cache. Later generations fill it again."""
        ...

    def prompt_cache_stats(self) -> dict[str, int] | None:
        """The cached prompts' counters (hits, fills, ...); None for a model without such a cache."""
        ...

    def prefill(self, prompt: CompletionPrompt, stop: Callable[[], bool]) -> int | None:
        """Compute the prompt's state ahead of its request, into the prompt cache (`stop()` may end
        it early); how many ids were run, None for a model without such a cache."""
        ...
