"""The completion pipeline: cache -> debounce -> context -> prompt -> generate (stop rule, time
budget) -> post-process; a debounced request given `Ahead` runs its context and prompt stages and
its prompt's prefill while it waits.

The one path from a cursor in a document to a suggestion: the server, the CLI's `complete`, the
demo (through the server) and every benchmark run it. Each stage is named and reports to a trace
hook (`inference.completion.trace`). Where the model runs is the caller's `Worker`: the server's
job host, or the caller's own thread (`DirectWorker`). Between stages (and between generated
tokens) the caller's `stale` check may end a request that nobody wants any more: a superseded
request costs nothing after the check that finds it stale.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, TypeVar

from ..engines.stream import JobStopped
from .budget import clean_prefix
from .context import CompletionContext, Neighbourhood, build_context
from .lines import MAX_LINE_CHARS, clip_long_lines, split_lines
from .no_suggestion import NoSuggestion
from .options import CompletionOptions
from .other_files import OtherFile
from .postprocess.chain import postprocess_explained
from .prompt import completion_prompt
from .stop import StopDetector
from .trace import StageEvent, Trace, traced
from .typeahead import TypeaheadCache

if TYPE_CHECKING:
    from ..engines.completion_model import CompletionModel, CompletionPrompt

T = TypeVar("T")
Job = Callable[["CompletionModel", threading.Event], T]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Stale = Callable[[], bool]
Prepared = tuple[CompletionContext, "CompletionPrompt", Callable[["CompletionModel"], "CompletionPrompt"]]  # `_prepare`'s


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
    automatic: bool = False  # triggered by typing (debounced), not asked for by the user
    other_files: tuple[OtherFile, ...] = ()  # the user's other open documents, most recently used first

    @property
    def offset(self) -> int:
        """The cursor's index in `text`."""
        return cursor_offset(split_lines(self.text), self.line, self.character)

    def accepted(self, suggestion: str) -> CompletionRequest:
        """The request at the end of `suggestion` once it is inserted at the cursor (accepted)."""
        offset = self.offset
        text = self.text[:offset] + suggestion + self.text[offset:]
        lines = split_lines(text[: offset + len(suggestion)])
        line = len(lines) - 1 if lines and not lines[-1].endswith(("\n", "\r")) else len(lines)
        character = len(lines[line]) if line < len(lines) else 0
        return replace(self, text=text, line=line, character=character, automatic=False)

    def entered(self) -> CompletionRequest:
        """The request at the start of a new line, as after Enter at the cursor: the document's
        line break inserted, no indentation."""
        offset = self.offset
        newline = _line_break(split_lines(self.text), self.line)
        text = self.text[:offset] + newline + self.text[offset:]
        return replace(self, text=text, line=self.line + 1, character=0, automatic=False)


def _line_break(lines: list[str], line: int) -> str:
    """The line break of `line` (else of the document's first line that has one, else "\n")."""
    for candidate in [*lines[line:line + 1], *lines]:
        if candidate.endswith(("\n", "\r")):
            return "\r\n" if candidate.endswith("\r\n") else candidate[-1]
    return "\n"


@dataclass(frozen=True)
class Suggestion:
    text: str  # inserted at the cursor
    from_cache: bool


class Worker(Protocol):
    """Where the model runs."""

    async def model(self) -> CompletionModel:
        """The model, once it is loaded."""

    async def run(self, job: Job[T]) -> T:
        """`job(model, stop)`; a job raises JobStopped when `stop` is set."""


@dataclass(frozen=True)
class Ahead:
    """Work a debounced request may do while it waits: its prompt's prefill is a job on `worker`
    (a low priority), which `yields()` ends between the model's passes (more urgent work waits)."""

    worker: Worker
    yields: Stale


class DirectWorker:
    """A loaded model run in the caller's thread (benchmarks, tests)."""

    def __init__(self, model: CompletionModel) -> None:
        self._model = model

    async def model(self) -> CompletionModel:
        return self._model

    async def run(self, job: Job[T]) -> T:
        return job(self._model, threading.Event())


@dataclass(frozen=True)
class Generated:
    """What the model wrote; `expired`: the time budget cut it (the text then ends cleanly)."""

    text: str
    expired: bool = False


def generate(prompt: CompletionPrompt, context: CompletionContext, model: CompletionModel, stop: threading.Event, *,
             budget_s: float = 0.0, clock: Clock = time.monotonic, stale: Stale | None = None) -> Generated:
    """Run the model on the prompt until the stop rule fires, or `budget_s` (0: none) has passed on
    `clock` since the job started (then only the `budget.clean_prefix` of the text is kept), and
    return what it wrote (post-processing applies the cut); raise JobStopped if asked to stop
    (`stop`, `stale`) first."""
    deadline = clock() + budget_s if budget_s > 0 else None
    detector = StopDetector(context.request)
    stream = model.generate(prompt, stop=lambda text: detector.feed(text) is not None)
    with stream:
        for _ in stream:
            if stop.is_set() or (stale is not None and stale()):
                raise JobStopped()
            if deadline is not None and stream.finish_reason is None and clock() >= deadline:
                return Generated(clean_prefix(stream.text), expired=True)
    return Generated(stream.text)


# Context and prompt building (Python under the GIL, tokenizing): two threads for every session of
# the process, so that many sessions (or clients that vanish mid-request) never grow the default
# executor's threads.
_CONTEXT_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="completion-context")


def _prefill_job(model: CompletionModel, prompt: CompletionPrompt, prompt_for: Callable[[CompletionModel], CompletionPrompt],
                 trace: Trace | None, stops: Callable[[threading.Event], bool]) -> Job[int | None]:
    """The job that runs `prompt` (built for `model`; for a model loaded since, `prompt_for` builds
    its own) into the model's prompt cache, stopped between passes once `stops(the job's stop
    event)` says so."""
    return lambda m, stop: traced(trace, "prefill", lambda: m.prefill(prompt if m is model else prompt_for(m), lambda: stops(stop)))


def _retrieve(task: asyncio.Future) -> None:
    """A prefill ahead of a request is only its cache entry: how it ended is not the request's."""
    if not task.cancelled():
        task.exception()


def _ignore(reason: NoSuggestion) -> None:
    """The default `on_empty`: nobody asked why."""


def _never_stale() -> bool:
    return False


class CompletionPipeline:
    """Turns a cursor position in a document into one suggestion, or none.

    `clock` and `sleep` time the debounce and the budget (a test passes fake ones).
    """

    def __init__(self, cache: TypeaheadCache | None = None, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.cache = cache  # None: every request goes to the model
        self.clock = clock
        self.sleep = sleep

    async def suggest(
        self, request: CompletionRequest, worker: Worker, *,
        on_empty: Callable[[NoSuggestion], None] = _ignore, trace: Trace | None = None,
        stale: Stale = _never_stale, speculative: bool = False, ahead: Ahead | None = None,
    ) -> Suggestion | None:
        """The suggestion at the request's cursor, None after calling `on_empty` with the reason.

        `stale` is asked between stages and between tokens; when it says True the request ends
        with JobStopped. A `speculative` request is computed for the cache: it skips the lookup,
        and its result is stored as speculative (`TypeaheadCache`). With `ahead`, a debounced
        request computes its context, prompt and prompt's prefill while it waits (`_work_ahead`),
        so that only the generation is left once the wait is over.
        Raises what `worker` raises when no model can serve, JobStopped when superseded.
        """
        text, line, character = request.text, request.line, request.character
        lines = split_lines(text)  # once: the offset and the long-line check both read it
        offset = cursor_offset(lines, line, character)
        prefix, suffix = text[:offset], text[offset:]
        if self.cache is not None and not speculative:
            cached = traced(trace, "cache", lambda: self.cache.lookup(request.uri, prefix, suffix))
            if cached is not None:
                return Suggestion(cached, from_cache=True)
        prepared: tuple[CompletionModel, Prepared] | None = None
        if request.automatic and request.options.debounce_ms > 0:
            deadline = self.clock() + request.options.debounce_ms / 1000
            if ahead is not None:
                prepared = await self._work_ahead(request, lines, worker, ahead, deadline, trace, stale)
            await traced_async(trace, "debounce", self.sleep(max(0.0, deadline - self.clock())))
        _check(stale, "debounce")
        model = await worker.model()
        _check(stale, "model")
        if not model.can_complete:
            on_empty(NoSuggestion.MODEL_CANNOT_COMPLETE)
            return None
        context, prompt, prompt_for = (prepared[1] if prepared is not None and prepared[0] is model
                                       else await self._prepare(request, lines, model, trace, stale))
        options = request.options
        start = time.perf_counter()
        generated = await worker.run(  # a model loaded since (new settings) gets its own prompt
            lambda m, stop: generate(prompt if m is model else prompt_for(m), context, m, stop,
                                     budget_s=options.time_budget_ms / 1000, clock=self.clock, stale=stale))
        if trace is not None:
            trace(StageEvent("generate", generated.text, (time.perf_counter() - start) * 1000))
        _check(stale, "generate")
        result = traced(trace, "postprocess", lambda: postprocess_explained(generated.text, context.request, trace))
        if isinstance(result, NoSuggestion):
            on_empty(NoSuggestion.TIME_BUDGET if generated.expired else result)
            return None
        if self.cache is not None:
            self.cache.store(request.uri, prefix, suffix, result, speculative=speculative)
        return Suggestion(result, from_cache=False)

    async def speculate(self, accepted: CompletionRequest, worker: Worker, *, trace: Trace | None = None,
                        stale: Stale = _never_stale) -> Suggestion | None:
        """Compute into the cache the suggestion that follows an accepted one, keyed by the
        `accepted` document and cursor (`suggest`, speculative). When there is none there and the
        cursor is at the end of its line (the accept completed the line), what follows is the next
        line: computed as if Enter came next (`CompletionRequest.entered`) and stored at the
        accepted cursor as the line break and that line, so that it shows at once after the accept
        and, typed ahead, after the Enter (an editor's indentation being the start of the line's)."""
        here = await self.suggest(accepted, worker, trace=trace, stale=stale, speculative=True)
        lines = split_lines(accepted.text)
        if here is not None or (accepted.line < len(lines) and lines[accepted.line][accepted.character:].strip()):
            return here
        entered = accepted.entered()
        following = await self.suggest(entered, worker, trace=trace, stale=stale, speculative=True)
        if following is None or self.cache is None:
            return following
        offset = cursor_offset(lines, accepted.line, accepted.character)
        newline = entered.text[offset: offset + len(entered.text) - len(accepted.text)]
        self.cache.store(accepted.uri, accepted.text[:offset], accepted.text[offset:], newline + following.text, speculative=True)
        return Suggestion(newline + following.text, from_cache=False)

    async def prewarm(self, request: CompletionRequest, worker: Worker, *, trace: Trace | None = None,
                      stale: Stale = _never_stale) -> int | None:
        """Compute the prompt of `request` ahead of it, into the model's prompt cache, so that a
        request at this cursor (or after it on the same lines) continues it instead of starting
        cold: the prompt ids run, None when the model keeps no such cache. `stale` ends it between
        stages and between the model's passes (JobStopped before the model runs)."""
        staged = await self._staged(request, split_lines(request.text), worker, trace, stale)
        if staged is None:
            return None
        model, (_, prompt, prompt_for) = staged
        return await worker.run(_prefill_job(model, prompt, prompt_for, trace, lambda stop: stop.is_set() or stale()))

    async def _work_ahead(
        self, request: CompletionRequest, lines: list[str], worker: Worker, ahead: Ahead, deadline: float,
        trace: Trace | None, stale: Stale,
    ) -> tuple[CompletionModel, Prepared] | None:
        """While a debounced request waits (until `deadline` on `clock`): its context and prompt
        stages, then its prompt's prefill as a job on `ahead.worker`, stopped between passes at the
        deadline, by `ahead.yields()` or when the request is stale (what it ran stays in the prompt
        cache, for the generation to continue). The model and the stages' results; None when the
        model cannot complete."""
        staged = await self._staged(request, lines, worker, trace, stale)
        if staged is None:
            return None
        model, (_, prompt, prompt_for) = staged
        prefill = asyncio.ensure_future(ahead.worker.run(_prefill_job(
            model, prompt, prompt_for, trace, lambda stop: stop.is_set() or self.clock() >= deadline or stale() or ahead.yields())))
        prefill.add_done_callback(_retrieve)
        wait = asyncio.ensure_future(self.sleep(max(0.0, deadline - self.clock())))
        try:
            await asyncio.wait({prefill, wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wait.cancel()
            if not prefill.done():
                prefill.cancel()  # a queued job is withdrawn; a running one stops after its pass
        return staged

    async def _staged(
        self, request: CompletionRequest, lines: list[str], worker: Worker, trace: Trace | None, stale: Stale,
    ) -> tuple[CompletionModel, Prepared] | None:
        """The model, once loaded, and `request`'s context and prompt stages for it (`_prepare`);
        None when the model cannot complete."""
        model = await worker.model()
        _check(stale, "model")
        if not model.can_complete:
            return None
        return model, await self._prepare(request, lines, model, trace, stale)

    async def _prepare(
        self, request: CompletionRequest, lines: list[str], model: CompletionModel, trace: Trace | None, stale: Stale,
    ) -> Prepared:
        """The context and prompt stages of `request` (its text split into `lines`) for `model`:
        the context, the prompt, and how to build it for another model (one loaded since)."""
        text, line, character = request.text, request.line, request.character
        if max(map(len, lines), default=0) > MAX_LINE_CHARS:
            text, character = clip_long_lines(lines, line, character)
        options = replace(request.options, context_tokens=min(request.options.context_tokens, model.preset.max_context_tokens))
        separator = model.preset.file_separator
        neighbourhood = Neighbourhood(request.uri, request.other_files, separator) if separator else None
        context = await asyncio.get_running_loop().run_in_executor(_CONTEXT_THREADS, lambda: traced(
            trace, "context", lambda: build_context(text, line, character, request.language, options,
                                                    model.count_tokens, trace, neighbourhood)))
        _check(stale, "context")

        def prompt_for(m: CompletionModel) -> CompletionPrompt:
            return completion_prompt(m, context.prefix, context.suffix, max_new_tokens=context.max_new_tokens,
                                     max_context_tokens=min(options.context_tokens + context.other_files_tokens,
                                                            model.preset.max_context_tokens),
                                     other_files=context.other_files)

        prompt = await asyncio.get_running_loop().run_in_executor(
            _CONTEXT_THREADS, lambda: traced(trace, "prompt", lambda: prompt_for(model)))
        _check(stale, "prompt")
        return context, prompt, prompt_for

    def complete(
        self, request: CompletionRequest, model: CompletionModel, *,
        on_empty: Callable[[NoSuggestion], None] = _ignore, trace: Trace | None = None,
    ) -> Suggestion | None:
        """`suggest` with `model` run in this thread (no event loop may be running in it)."""
        return asyncio.run(self.suggest(request, DirectWorker(model), on_empty=on_empty, trace=trace))


def cursor_offset(lines: list[str], line: int, character: int) -> int:
    """The index in the text of `lines` (each with its line break) of (line, character)."""
    return sum(len(ln) for ln in lines[:line]) + character


def _check(stale: Stale, stage: str) -> None:
    """The stop check after `stage`: JobStopped when the request is stale."""
    if stale():
        raise JobStopped(f"stale after {stage}")


async def traced_async(trace: Trace | None, stage: str, run: Awaitable[T]) -> T:
    """`await run`, reported to `trace` under the name `stage`."""
    start = time.perf_counter()
    output = await run
    if trace is not None:
        trace(StageEvent(stage, output, (time.perf_counter() - start) * 1000))
    return output
