"""The completion pipeline: typed-ahead cache -> context -> model -> stop rule -> post-processing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from inference import CodeModel

from .config import Settings
from .context import CompletionContext, build_context
from .documents import split_lines
from .model_host import PRIORITY_COMPLETION, JobStopped, ModelHost, run_job
from .no_suggestion import NoSuggestion
from .postprocess import StopDetector, postprocess_explained
from .typeahead import TypeaheadCache


MAX_LINE_CHARS = 8192  # longer lines (minified code) are cut to this many characters for the model


def clip_long_lines(lines: list[str], line: int, character: int) -> tuple[str, int]:
    """The text of `lines` with every line longer than MAX_LINE_CHARS cut to that length (the
    cursor's line around the cursor, others after their start), and the cursor's character in it.
    Keeps the line numbers, and the model's work bounded on megabyte-long lines."""
    clipped = []
    for number, text in enumerate(lines):
        body = text.rstrip("\r\n")
        if len(body) <= MAX_LINE_CHARS:
            clipped.append(text)
            continue
        start = max(0, min(character - MAX_LINE_CHARS * 3 // 4, len(body) - MAX_LINE_CHARS)) if number == line else 0
        clipped.append(body[start : start + MAX_LINE_CHARS] + text[len(body):])
        if number == line:
            character -= start
    return "".join(clipped), character


@dataclass(frozen=True)
class Suggestion:
    text: str  # inserted at the cursor
    from_cache: bool


def _generate(context: CompletionContext, model: CodeModel, stop: threading.Event) -> str:
    """Run the model until the stop rule fires and return what it wrote (post-processing applies
    the cut); raise JobStopped if asked to stop first."""
    detector = StopDetector(context.request)
    stream = model.complete(
        context.prefix, context.suffix, max_new_tokens=context.max_new_tokens,
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

    def __init__(self, host: ModelHost, cache: TypeaheadCache) -> None:
        self.host = host
        self.cache = cache

    async def suggest(
        self, uri: str, text: str, line: int, character: int, language: str | None, settings: Settings,
        on_empty: Callable[[NoSuggestion], None] = _ignore,
    ) -> Suggestion | None:
        """Suggestion for the cursor at (line, character) of `text` (Python string units).

        None when there is none, after calling `on_empty` with the reason. Raises
        ModelUnavailable when no model can serve, JobStopped when superseded.
        """
        lines = split_lines(text)
        offset = sum(len(ln) for ln in lines[:line]) + character
        prefix, suffix = text[:offset], text[offset:]
        cached = self.cache.lookup(uri, prefix, suffix)
        if cached is not None:
            return Suggestion(cached, from_cache=True)
        model = await self.host.ready()
        if not model.can_complete:
            on_empty(NoSuggestion.MODEL_CANNOT_COMPLETE)
            return None
        if max(map(len, lines), default=0) > MAX_LINE_CHARS:
            text, character = clip_long_lines(lines, line, character)
        context = await asyncio.to_thread(build_context, text, line, character, language, settings, model.count_tokens)
        raw = await run_job(self.host, PRIORITY_COMPLETION, lambda m, stop: _generate(context, m, stop))
        result = postprocess_explained(raw, context.request)
        if isinstance(result, NoSuggestion):
            on_empty(result)
            return None
        self.cache.store(uri, prefix, suffix, result)
        return Suggestion(result, from_cache=False)
