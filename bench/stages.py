"""Where the time of one completion goes: the server's pipeline timed in-process.

For a sequence of cursor positions (the states of a keystroke replay), run the server's own
`CompletionPipeline` and read each stage's time from its trace hook (syntax analysis, context
building, post-processing). The generate stage is split further (the healing step, the prompt
forward pass, decoding) by wrapping the CodeModel's engine object for the run (benchmark
instrumentation only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from inference import CodeModel
from inference.completion.options import CompletionOptions
from inference.completion.pipeline import CompletionPipeline, CompletionRequest
from inference.completion.trace import StageEvent
from inference.engines.healed_generation import pick_healing_token

from .replay import Scenario, typing_states
from .stats import mean, median, p95


@dataclass
class _EngineClock:
    """Durations of the engine calls made during one completion."""

    healing_ms: float = 0.0  # the forward pass that ranks candidates for the healing token
    first_token_ms: float | None = None  # from the generation call to its first token (the prompt pass)
    decode_ms: float = 0.0  # the remaining tokens
    tokens: int = 0
    argmax_heals: bool | None = None  # the most likely first token re-creates the cut (None: nothing was cut)


@dataclass
class StageTimes:
    index: int  # the keystroke after which the completion was asked for
    line: int
    character: int
    prompt_tokens: int
    syntax_ms: float
    context_ms: float  # the context stage, syntax analysis included
    healing_ms: float
    first_token_ms: float
    decode_ms: float
    tokens: int
    postprocess_ms: float
    total_ms: float
    static_resets: int  # times the static-prompt cache was emptied during this completion
    argmax_heals: bool | None  # nothing cut (None), or whether the most likely first token re-created the cut
    suggestion: str = field(default="")


class _Instrumented:
    """Wraps an engine's generation calls to time them.

    `next_token_candidates` (a pass that only ranks first tokens) and a speculative
    `stream_checked` whose first token was refused count as healing; the first token of the
    call that generates counts as the prompt pass, the rest as decoding.
    """

    def __init__(self, engine: Any, cut: str, token_texts: list[str]) -> None:
        self.engine = engine
        self.clock = _EngineClock()
        self.cut = cut  # the text healing cut from the prompt
        self._token_texts = token_texts

    def _fits(self, token: int) -> bool:
        return pick_healing_token([token], self.cut, self._token_texts) is not None

    def next_token_candidates(self, *args: Any) -> list[int]:
        start = time.perf_counter()
        candidates = self.engine.next_token_candidates(*args)
        self.clock.healing_ms += (time.perf_counter() - start) * 1000
        self.clock.argmax_heals = bool(candidates) and self._fits(candidates[0])
        return candidates

    def stream_checked(self, *args: Any) -> Iterator[int]:
        *head, accept, k = args

        def accept_first(token: int) -> bool:
            self.clock.argmax_heals = self._fits(token)
            return accept(token)

        start = time.perf_counter()
        try:
            yield from self._timed(self.engine.stream_checked(*head, accept_first, k), start)
        except Exception:
            if self.clock.first_token_ms is None:  # the bet was refused: that pass only ranked candidates
                self.clock.healing_ms += (time.perf_counter() - start) * 1000
            raise

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[int]:
        yield from self._timed(self.engine.stream(*args, **kwargs), time.perf_counter())

    def _timed(self, steps: Iterator[int], start: float) -> Iterator[int]:
        try:
            for token in steps:
                now = time.perf_counter()
                if self.clock.first_token_ms is None:
                    self.clock.first_token_ms = (now - start) * 1000
                else:
                    self.clock.decode_ms += (now - start) * 1000
                self.clock.tokens += 1
                yield token
                start = time.perf_counter()
        finally:
            steps.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def time_completion(model: CodeModel, text: str, line: int, character: int, options: CompletionOptions,
                    index: int = 0) -> StageTimes:
    """Run the pipeline for the cursor at (line, character) of `text` and time its stages."""
    engine = model._engine  # instrumentation: the benchmark times the engine calls of this run
    resets = getattr(getattr(engine, "static_cache", None), "resets", 0)
    events: list[StageEvent] = []

    def trace(event: StageEvent) -> None:
        events.append(event)
        if event.stage == "prompt":  # the engine's calls start now: time them
            timed.cut = event.output.cut

    timed = _Instrumented(engine, "", model.tokenizer.token_texts)
    model._engine = timed
    started = time.perf_counter()
    try:
        suggestion = CompletionPipeline().complete(
            CompletionRequest(f"file:///stages/{index}.py", text, line, character, "python", options), model, trace=trace)
    finally:
        model._engine = engine
    total_ms = (time.perf_counter() - started) * 1000
    ms = {event.stage: event.ms for event in events if not event.stage.startswith("postprocess.")}
    prompt = next(event.output for event in events if event.stage == "prompt")
    clock = timed.clock
    return StageTimes(
        index=index, line=line, character=character, prompt_tokens=model.count_tokens(prompt.prefix),
        syntax_ms=round(ms["syntax"], 2), context_ms=round(ms["context"], 2), healing_ms=round(clock.healing_ms, 1),
        first_token_ms=round(clock.first_token_ms or 0.0, 1), decode_ms=round(clock.decode_ms, 1), tokens=clock.tokens,
        postprocess_ms=round(ms["postprocess"], 2), total_ms=round(total_ms, 1),
        static_resets=getattr(getattr(engine, "static_cache", None), "resets", 0) - resets,
        argmax_heals=clock.argmax_heals, suggestion=suggestion.text if suggestion is not None else "",
    )


def summarize(times: list[StageTimes]) -> dict[str, dict[str, float]]:
    """Mean, median and p95 of each stage's milliseconds, and of the prompt length."""
    columns: dict[str, Callable[[StageTimes], float]] = {
        "syntax_ms": lambda t: t.syntax_ms,
        "context_ms": lambda t: t.context_ms,
        "healing_ms": lambda t: t.healing_ms,
        "first_token_ms": lambda t: t.first_token_ms,
        "decode_ms": lambda t: t.decode_ms,
        "decode_ms_per_token": lambda t: t.decode_ms / max(1, t.tokens - 1),
        "tokens": lambda t: t.tokens,
        "postprocess_ms": lambda t: t.postprocess_ms,
        "total_ms": lambda t: t.total_ms,
        "prompt_tokens": lambda t: t.prompt_tokens,
    }
    out = {}
    for name, get in columns.items():
        values = [get(t) for t in times]
        out[name] = {"mean": round(mean(values), 1), "p50": round(median(values), 1), "p95": round(p95(values), 1)}
    out["static_resets"] = {"total": sum(t.static_resets for t in times), "completions": len(times)}
    healed = [t for t in times if t.argmax_heals is not None]
    out["healing"] = {"healed": len(healed), "argmax_fits": sum(bool(t.argmax_heals) for t in healed),
                      "extra_passes": sum(t.healing_ms > 0 for t in times), "completions": len(times)}
    return out


def profile_scenario(
    model: CodeModel, scenario: Scenario, options: CompletionOptions, every: int = 8, also: frozenset[int] = frozenset()
) -> list[StageTimes]:
    """Stage times after every `every`-th keystroke of a replay scenario, every Enter and the
    keystrokes in `also` (e.g. those whose request the replay saw completed), in typing order."""
    times = []
    for i, (text, line, character, kind) in enumerate(typing_states(scenario)):
        if kind == "enter" or i % every == 0 or i in also:
            times.append(time_completion(model, text, line, character, options, index=i))
    return times


def queueing(requests: list[dict[str, Any]], times: list[StageTimes]) -> dict[str, Any]:
    """For the replay's completed model runs that were also timed in-process: the LSP latency
    minus the in-process time at the same document state (waiting behind superseded work,
    transport, scheduling), median and p95."""
    alone = {t.index: t.total_ms for t in times}
    extra = [r["latency_ms"] - alone[r["index"]] for r in requests
             if r["outcome"] != "superseded" and not r["cache_hit"] and r["index"] in alone]
    if not extra:
        return {"count": 0}
    return {"count": len(extra), "p50_ms": round(median(extra), 1), "p95_ms": round(p95(extra), 1)}
