"""A CodeModel whose completions come from an OpenAI-compatible server.

`CodeModel("openai:http://host:port/v1#model")` builds one (see `openai_backend` for the spec).
It completes left to right only (the `/completions` API has no portable fill-in-the-middle)
and does not summarize: summaries stay with a local model (`summary_model`).

Token healing is partial. The prompt is backed off to a clean boundary as for local models,
and the server's continuation must re-create the text that was cut; but the server cannot be
made to pick a first token that agrees with it, so when its own choice does not, the stream
ends "diverged" with no text (locally, the alternatives of that step would be tried).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

from .healing import HealingFilter, heal_prefix
from .model import CodeModel
from .openai_backend import DEFAULT_TIMEOUT_S, OpenAICompletionEngine, parse_remote_spec
from .presets import Architecture, Preset, PromptFormat
from .stream import StopPredicate, TextStream

CHARS_PER_TOKEN = 3  # token counts are estimated: the server's tokenizer is not at hand


def estimate_tokens(text: str) -> int:
    """A token count for `text` that errs high for code (about 3-4 characters a token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class _Verbatim:
    """The decoder of a stream whose engine yields text: each piece is passed through."""

    def push(self, piece: str) -> str:
        return piece


class RemoteTextStream(TextStream):
    """A TextStream over text pieces from a server; `tokens` counts pieces (about one a token)."""

    def __init__(self, pieces: Iterator[str], healing: HealingFilter | None = None, stop: StopPredicate | None = None) -> None:
        super().__init__(pieces, _Verbatim(), healing, stop)  # type: ignore[arg-type]


class RemoteCodeModel(CodeModel):
    """Completions from one model of an OpenAI-compatible server.

    Args:
        model: `openai:<base URL>[#<model id>]`; without a model id, the first the server lists.
        device, compute_type, cpu_threads, local_files_only, trust_remote_code, max_cached_prompts:
            accepted for CodeModel's signature; the server decides these.
        progress: called with short messages while the server is contacted.
        timeout: seconds to wait for a connection or for the next bytes of an answer.

    Raises RemoteSpecError for a malformed spec and RemoteModelError (naming the URL) when the
    server cannot be reached or does not serve the model. It has no local directory or tokenizer.
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
        *,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        max_cached_prompts: int = 2,
        progress: Callable[[str], None] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        spec = parse_remote_spec(str(model))
        if progress:
            progress(f"Connecting to {spec.base_url}")
        self.engine = OpenAICompletionEngine(spec, timeout=timeout)
        self.model_id = self.engine.resolve_model()
        self.device = "remote"
        self.compute_type = ""
        self.preset = Preset(
            name=f"openai:{self.model_id}", hub_id=None, architecture=Architecture.DECODER,
            completion_format=PromptFormat.PLAIN, description=f"{self.model_id} served at {spec.base_url}",
        )

    def count_tokens(self, text: str) -> int:
        """An estimate: see `estimate_tokens`."""
        return estimate_tokens(text)

    def complete(
        self, prefix: str, suffix: str = "", *, max_new_tokens: int = 48, stop: StopPredicate | None = None
    ) -> TextStream:
        """Stream the server's code that continues `prefix` (`suffix` is not sent: left to right only).

        The stream's text always continues `prefix` exactly (see the module's note on healing);
        closing it closes the connection. Nothing is sent until it is iterated.
        """
        healed = heal_prefix(prefix)
        new_tokens = max_new_tokens + (estimate_tokens(healed.cut) + 1 if healed.cut else 0)
        pieces = self.engine.stream(self.model_id, healed.kept, new_tokens)
        return RemoteTextStream(pieces, HealingFilter(healed.cut) if healed.cut else None, stop)
