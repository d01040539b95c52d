"""A model whose completions come from an OpenAI-compatible server (a CompletionModel, CodeModel's sibling).

`load_model("openai:http://host:port/v1#model")` builds one (see `openai_backend` for the spec).
It completes left to right only (the `/completions` API has no portable fill-in-the-middle)
and does not summarize: summaries stay with a local model (`summary_model`).

Token healing over the API: the prompt is backed off to a clean boundary as for local models
and the server's own continuation is taken when its first piece agrees with the cut text. When
it does not, the most likely first tokens are asked for (`logprobs`, at most
HEALING_ALTERNATIVES: OpenAI's limit) and the prompt is continued after the first that agrees,
as a new request (a server with prefix caching does not recompute the shared prompt). The
server re-tokenizes that prompt, and sees fewer alternatives than a local model's 256; when
none agrees, or the server gives no log-probabilities, the stream ends "diverged" with no text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from .completion_model import CapabilityError, CompletionPrompt
from .healed_generation import HealingFilter, NoHealingToken, pick_healing_token
from ..completion.prompt import completion_prompt
from .openai_backend import DEFAULT_TIMEOUT_S, OpenAICompletionEngine, parse_remote_spec
from ..models.presets import Architecture, Preset, PromptFormat
from .stream import StopPredicate, TextStream

CHARS_PER_TOKEN = 3  # token counts are estimated: the server's tokenizer is not at hand
HEALING_ALTERNATIVES = 5  # first tokens asked for when the server's own does not re-create the cut


def estimate_tokens(text: str) -> int:
    """A token count for `text` that errs high for code (about 3-4 characters a token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _agrees(text: str, cut: str) -> bool:
    """Whether a first token's text may start re-creating `cut` (pick_healing_token's rule)."""
    return pick_healing_token([0], cut, [text]) is not None


def _healed_pieces(engine: OpenAICompletionEngine, model: str, kept: str, cut: str, new_tokens: int) -> Iterator[str]:
    """Text pieces of a healed generation of `kept` (see the module's note).

    Raises NoHealingToken when no likely first token agrees with `cut`.
    """
    bet = engine.stream(model, kept, new_tokens)
    try:
        first = next(bet, None)
        if first is None:
            return
        if not cut or _agrees(first, cut):
            yield first
            yield from bet
            return
    finally:
        bet.close()
    alternatives = engine.first_token_alternatives(model, kept, HEALING_ALTERNATIVES)
    token = next((text for text in alternatives if _agrees(text, cut)), None)
    if token is None:
        raise NoHealingToken(cut)
    yield token
    rest = engine.stream(model, kept + token, new_tokens - 1)
    try:
        yield from rest
    finally:
        rest.close()


class _Verbatim:
    """The decoder of a stream whose engine yields text: each piece is passed through."""

    def push(self, piece: str) -> str:
        return piece


class RemoteTextStream(TextStream):
    """A TextStream over text pieces from a server; `tokens` counts pieces (about one a token)."""

    def __init__(self, pieces: Iterator[str], healing: HealingFilter | None = None, stop: StopPredicate | None = None) -> None:
        super().__init__(pieces, _Verbatim(), healing, stop)  # type: ignore[arg-type]


class RemoteCodeModel:
    """Completions from one model of an OpenAI-compatible server.

    Args:
        model: `openai:<base URL>[#<model id>]`; without a model id, the first the server lists.
        progress: called with short messages while the server is contacted.
        timeout: seconds to wait for a connection or for the next bytes of an answer.

    Raises RemoteSpecError for a malformed spec and RemoteModelError (naming the URL) when the
    server cannot be reached or does not serve the model. It has no local directory or tokenizer.
    """

    def __init__(
        self,
        model: str,
        *,
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
        self.runtime = "openai"
        self.tokenizer = None  # the server tokenizes: the prompt stage sends it text
        self.preset = Preset(
            name=f"openai:{self.model_id}", hub_id=None, architecture=Architecture.DECODER,
            completion_format=PromptFormat.PLAIN, description=f"{self.model_id} served at {spec.base_url}",
        )

    @property
    def can_complete(self) -> bool:
        return True

    @property
    def can_summarize(self) -> bool:
        return False

    def summarize(self, code: str, *, max_new_tokens: int = 48) -> TextStream:
        """Always CapabilityError: summaries stay with a local model."""
        raise CapabilityError(f"{self.preset.name} does not summarize code")

    def release_cached_prompts(self) -> int:
        """Always 0: nothing is cached here (the server manages its own cache)."""
        return 0

    def prompt_cache_stats(self) -> dict[str, int] | None:
        """Always None: nothing is cached here."""
        return None

    def prefill(self, prompt: CompletionPrompt, stop: Callable[[], bool]) -> int | None:
        """Always None: the server manages its own cache."""
        return None

    def count_tokens(self, text: str) -> int:
        """An estimate: see `estimate_tokens`."""
        return estimate_tokens(text)

    def complete(
        self, prefix: str, suffix: str = "", *, max_new_tokens: int = 48, stop: StopPredicate | None = None,
        max_context_tokens: int | None = None,
    ) -> TextStream:
        """Stream the server's code that continues `prefix`: `generate` on the `completion_prompt`."""
        return self.generate(completion_prompt(self, prefix, suffix, max_new_tokens=max_new_tokens,
                                               max_context_tokens=max_context_tokens), stop=stop)

    def generate(self, prompt: CompletionPrompt, *, stop: StopPredicate | None = None) -> TextStream:
        """Stream the server's continuation of the prompt's healed prefix, sent whole (`suffix` is not
        sent: left to right only; the caller's window meets the budget).

        The stream's text always continues the prompt's prefix exactly (see the module's note on
        healing); closing it closes the connection. Nothing is sent until it is iterated.
        """
        assert isinstance(prompt.model_input, str)
        pieces = _healed_pieces(self.engine, self.model_id, prompt.model_input, prompt.cut, prompt.new_tokens)
        return RemoteTextStream(pieces, HealingFilter(prompt.cut) if prompt.cut else None, stop)
