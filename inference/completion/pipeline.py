"""The completion pipeline: cache -> context -> prompt -> generate (stop rule) -> post-process.

The one path from a cursor in a document to a suggestion: the server, the CLI's `complete`, the
demo (through the server) and every benchmark run it. Each stage is named and reports to a trace
hook (`inference.completion.trace`). Where the model runs is the caller's `Worker`: the server's
job host, or the caller's own thread (`DirectWorker`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, TypeVar

from ..stream import JobStopped
from .context import CompletionContext, build_context
from .lines import MAX_LINE_CHARS, clip_long_lines, split_lines
from .no_suggestion import NoSuggestion
from .options import CompletionOptions
from .postprocess.chain import postprocess_explained
from .stop import StopDetector
from .trace import StageEvent, Trace, traced
from .typeahead import TypeaheadCache

if TYPE_CHECKING:
    from ..model import CodeModel

T = TypeVar("T")
Job = Callable[["CodeModel", threading.Event], T]


@dataclass(frozen=True)
class CompletionRequest:
    """A cursor in a document, in plain types: `line` and `character` index the document's lines
    (`lines.split_lines`) and a line's Python characters."""

    uri: str
    text: str
    line: int
    character: int
    language: str | None  # a tree-sitter grammar name (`syntax.language_for`), None: no syntax
    options: CompletionOptions = CompletionOptions()


@dataclass(frozen=True)
class Prompt:
    """What the model is asked: the text before and after the cursor, and the token budget that
    holds the prompt and `max_new_tokens` (the model formats, heals and cuts it to that budget)."""

    prefix: str
    suffix: str
    max_new_tokens: int
    context_tokens: int


@dataclass(frozen=True)
class Suggestion:
    text: str  # inserted at the cursor
    from_cache: bool


class Worker(Protocol):
    """Where the model runs."""

    async def model(self) -> CodeModel:
        """The model, once it is loaded."""

    async def run(self, job: Job[T]) -> T:
        """`job(model, stop)`; a job raises JobStopped when `stop` is set."""


class DirectWorker:
    """A loaded model run in the caller's thread (benchmarks, tests)."""

    def __init__(self, model: CodeModel) -> None:
        self._model = model

    async def model(self) -> CodeModel:
        return self._model

    async def run(self, job: Job[T]) -> T:
        return job(self._model, threading.Event())


def generate(prompt: Prompt, context: CompletionContext, model: CodeModel, stop: threading.Event) -> str:
    """Run the model until the stop rule fires and return what it wrote (post-processing applies
    the cut); raise JobStopped if asked to stop first."""
    detector = StopDetector(context.request)
    stream = model.complete(
        prompt.prefix, prompt.suffix, max_new_tokens=prompt.max_new_tokens, max_context_tokens=prompt.context_tokens,
        stop=lambda text: detector.feed(text) is not None,
    )
    with stream:
        for _ in stream:
            if stop.is_set():
                raise JobStopped()
    return stream.text


def _ignore(reason: NoSuggestion) -> None:
    """The default `on_empty`: nobody asked why."""


class CompletionPipeline:
    """Turns a cursor position in a document into one suggestion, or none."""

    def __init__(self, cache: TypeaheadCache | None = None) -> None:
        self.cache = cache  # None: every request goes to the model

    async def suggest(
        self, request: CompletionRequest, worker: Worker, *,
        on_empty: Callable[[NoSuggestion], None] = _ignore, trace: Trace | None = None,
    ) -> Suggestion | None:
        """The suggestion at the request's cursor, None after calling `on_empty` with the reason.

        Raises what `worker` raises when no model can serve, JobStopped when superseded.
        """
        text, line, character = request.text, request.line, request.character
        lines = split_lines(text)
        offset = sum(len(ln) for ln in lines[:line]) + character
        prefix, suffix = text[:offset], text[offset:]
        if self.cache is not None:
            cached = traced(trace, "cache", lambda: self.cache.lookup(request.uri, prefix, suffix))
            if cached is not None:
                return Suggestion(cached, from_cache=True)
        model = await worker.model()
        if not model.can_complete:
            on_empty(NoSuggestion.MODEL_CANNOT_COMPLETE)
            return None
        if max(map(len, lines), default=0) > MAX_LINE_CHARS:
            text, character = clip_long_lines(lines, line, character)
        options = replace(request.options, context_tokens=min(request.options.context_tokens, model.preset.max_context_tokens))
        context = await asyncio.to_thread(
            traced, trace, "context",
            lambda: build_context(text, line, character, request.language, options, model.count_tokens, trace))
        prompt = traced(trace, "prompt", lambda: Prompt(context.prefix, context.suffix, context.max_new_tokens,
                                                         options.context_tokens))
        start = time.perf_counter()
        raw = await worker.run(lambda m, stop: generate(prompt, context, m, stop))
        if trace is not None:
            trace(StageEvent("generate", raw, (time.perf_counter() - start) * 1000))
        result = traced(trace, "postprocess", lambda: postprocess_explained(raw, context.request, trace))
        if isinstance(result, NoSuggestion):
            on_empty(result)
            return None
        if self.cache is not None:
            self.cache.store(request.uri, prefix, suffix, result)
        return Suggestion(result, from_cache=False)

    def complete(
        self, request: CompletionRequest, model: CodeModel, *,
        on_empty: Callable[[NoSuggestion], None] = _ignore, trace: Trace | None = None,
    ) -> Suggestion | None:
        """`suggest` with `model` run in this thread (no event loop may be running in it)."""
        return asyncio.run(self.suggest(request, DirectWorker(model), on_empty=on_empty, trace=trace))
