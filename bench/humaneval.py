"""HumanEval single-line infilling: the bare engine and the server's own pipeline, side by side.

Each task removes one line from a HumanEval solution. The paths that fill it:

- ``engine``: `CodeModel.complete(prompt)` (greedy, left to right, token healing), stopped at
  the first newline after content; the line is what it wrote before that newline.
- ``engine-infill``: the same with the code after the line as the suffix
  (`CodeModel.complete(prompt, suffix)`), for models that infill (FIM tokens, CodeT5+ spans).
- ``server``: what an editor would send. The document is the task with the missing line
  emptied (``prompt + "\\n" + suffix``: its newline kept), the cursor at the start of that
  empty line, and the server's own `CompletionPipeline` does the rest (context builder,
  healing, stop rule, post-processing) with the server's default options, the model run in
  the benchmark's thread. ``server-indented`` puts the
  missing line's indentation on that line first and the cursor after it. ``server-typed`` is
  ``server`` as a typed (automatic) request whose debounce outlasts its work ahead: the prompt
  prefilled during the wait (`pipeline.Ahead`), the generation continuing it from the last id
  (the debounce itself not waited for here).

The paths of one run take turns on one model, and so on one prompt cache: a path's prompt may
continue a state another path computed (the tasks of one problem share their start). Paths that
compute states differently (`server-typed` runs the last id alone) are compared in separate runs.

A completion passes when ``prompt + line + "\\n" + suffix + test + check(entry_point)`` exits
cleanly in a separate, time-limited Python process. The data file is read at run time.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import sys
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from inference import CodeModel
from inference.models.presets import PromptFormat
from inference.completion.options import CompletionOptions
from inference.completion.pipeline import Ahead, CompletionPipeline, CompletionRequest, DirectWorker
from inference.completion.trace import StageEvent
from inference.completion.typeahead import TypeaheadCache

from .execution import Outcome, run_program
from .metrics import edit_similarity, exact_match, normalize_line
from .stats import bootstrap_interval, mcnemar_exact, mean, median, p95, wilson_interval

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "HumanEval-SingleLineInfilling.jsonl.gz"
PATHS = ("engine", "engine-infill", "server", "server-indented", "server-typed")
TYPED_DEBOUNCE_MS = 60_000  # `server-typed`: long enough for any prompt's prefill (not waited for)
MAX_NEW_TOKENS = 48
_LINE_DONE = re.compile(r"\S[^\n]*\n")


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str  # code before the missing line (ends with a newline)
    suffix: str  # code after it
    canonical: str  # the missing line, newline included
    test: str
    entry_point: str

    @property
    def indent(self) -> str:
        return self.canonical[: len(self.canonical) - len(self.canonical.lstrip(" \t"))]


@dataclass(frozen=True)
class EditorView:
    """The document an editor holds for a task, and where its cursor is."""

    text: str
    line: int
    character: int
    typed: str  # text already on the cursor line before the cursor


@dataclass
class Attempt:
    task_id: str
    path: str
    completion: str  # the text inserted for the missing line (after anything typed), "" for none
    latency_ms: float
    passed: bool = False
    status: str = ""
    detail: str = ""
    exact: bool = False
    similarity: float = 0.0


def load_tasks(path: Path = DATA, limit: int | None = None) -> list[Task]:
    """The tasks of the data file, in file order (the first `limit` ones when given)."""
    tasks = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            tasks.append(Task(row["task_id"], row["prompt"], row["suffix"], row["canonical_solution"], row["test"],
                              row["entry_point"]))
            if limit is not None and len(tasks) >= limit:
                break
    return tasks


def editor_view(task: Task, indented: bool) -> EditorView:
    """The missing line emptied but its newline kept; the cursor at its start (or after its indentation)."""
    typed = task.indent if indented else ""
    return EditorView(task.prompt + typed + "\n" + task.suffix, task.prompt.count("\n"), len(typed), typed)


def program(task: Task, line: str) -> str:
    """The test program for `line` (no newline) filling the gap."""
    return f"{task.prompt}{line}\n{task.suffix}\n\n{task.test}\n\ncheck({task.entry_point})\n"


def first_line(text: str) -> str:
    """`text` up to its first newline that follows content (all of it if there is none)."""
    match = _LINE_DONE.search(text)
    return text if match is None else text[: match.end() - 1]


def engine_line(model: CodeModel, task: Task, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
    """The bare engine's line: greedy left-to-right from the prompt, healed, cut at the first line end."""
    stream = model.complete(task.prompt, max_new_tokens=max_new_tokens, stop=lambda text: _LINE_DONE.search(text) is not None)
    return first_line(stream.read())


def can_infill(model: CodeModel) -> bool:
    """Whether the model uses the code after the cursor (FIM tokens or CodeT5+ span infilling)."""
    return model.preset.infill_format is not None or model.preset.completion_format is PromptFormat.FIM


def engine_infill_line(model: CodeModel, task: Task, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
    """The bare engine's line written between the prompt and the suffix, cut at the first line end."""
    stream = model.complete(task.prompt, task.suffix, max_new_tokens=max_new_tokens,
                            stop=lambda text: _LINE_DONE.search(text) is not None)
    return first_line(stream.read())


@dataclass(frozen=True)
class StageTrace:
    """What each stage of the server path produced for one task (for failure analysis)."""

    prompt_is_task_prompt: bool  # the context builder gave the model exactly the task's prompt
    prompt_chars_dropped: int  # characters of the task's prompt (from its start) left out of the model's prompt
    header_chars: int  # characters the context builder put in front of what it kept (imports, signatures)
    multiline: bool  # the request was a block completion
    raw: str  # the model's text as the stop rule cut it
    raw_unstopped_line: str  # the model's text under the engine's own stop rule
    final: str | None  # after post-processing
    first_changing_stage: str | None = None  # the first post-processing stage that changed the text


def trace_server(model: CodeModel, task: Task, view: EditorView, options: CompletionOptions) -> StageTrace:
    """Re-run the server path with the pipeline's trace hook: what each stage produced."""
    events: list[StageEvent] = []
    request = CompletionRequest(f"file:///humaneval/{task.task_id}/trace.py", view.text, view.line, view.character,
                                "python", options)
    CompletionPipeline().complete(request, model, trace=events.append)
    output = {event.stage: event.output for event in reversed(events)}  # each stage's first output
    context, prompt = output["context"], output["prompt"]
    raw = output.get("postprocess.stop", "")  # the model's text as the stop rule cut it
    final = output.get("postprocess")
    own = model.complete(prompt.prefix, prompt.suffix, max_new_tokens=MAX_NEW_TOKENS,
                         max_context_tokens=prompt.context_tokens, stop=lambda t: _LINE_DONE.search(t) is not None)
    expected = task.prompt + view.typed
    shared = _common_suffix_length(context.prefix, expected)
    return StageTrace(
        prompt_is_task_prompt=context.prefix == expected,
        prompt_chars_dropped=len(expected) - shared,
        header_chars=len(context.prefix) - shared,
        multiline=context.request.multiline,
        raw=raw,
        raw_unstopped_line=first_line(own.read()),
        final=final if isinstance(final, str) else None,
        first_changing_stage=first_changing_stage(events),
    )


def first_changing_stage(events: list[StageEvent]) -> str | None:
    """Name of the first post-processing stage after the stop rule that changed the text (the
    pipeline's trace of one completion)."""
    steps = [e for e in events if e.stage.startswith("postprocess.")]
    for before, after in zip(steps, steps[1:]):
        if after.stage != "postprocess.stop" and after.output != before.output:
            return after.stage.removeprefix("postprocess.")
    return None


def _common_suffix_length(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


class Runner:
    """Runs the paths on tasks with one model; executes programs in a one-worker pool."""

    def __init__(self, model: CodeModel, options: CompletionOptions, timeout_s: float, jobs: int) -> None:
        self.model = model
        self.options = options
        self.timeout_s = timeout_s
        self.pipeline = CompletionPipeline(TypeaheadCache())
        self.typed = CompletionPipeline(TypeaheadCache(), sleep=_no_wait)
        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="bench-exec")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.loop.close()

    def attempt(self, task: Task, path: str) -> tuple[Attempt, Future[Outcome]]:
        """Fill the task's line by `path`; the test program's outcome arrives in the future."""
        start = time.perf_counter()
        if path == "engine":
            inserted = line = engine_line(self.model, task, MAX_NEW_TOKENS)
        elif path == "engine-infill":
            inserted = line = engine_infill_line(self.model, task, MAX_NEW_TOKENS)
        else:
            view = editor_view(task, indented=path == "server-indented")
            uri = f"file:///humaneval/{task.task_id}/{path}.py"
            typed = path == "server-typed"
            options = replace(self.options, debounce_ms=TYPED_DEBOUNCE_MS) if typed else self.options
            request = CompletionRequest(uri, view.text, view.line, view.character, "python", options, automatic=typed)
            worker = DirectWorker(self.model)
            suggestion = self.loop.run_until_complete(
                self.typed.suggest(request, worker, ahead=Ahead(worker, lambda: False)) if typed else self.pipeline.suggest(request, worker))
            inserted = suggestion.text if suggestion is not None else ""
            line = view.typed + inserted
        latency = (time.perf_counter() - start) * 1000
        attempt = Attempt(task.task_id, path, inserted, round(latency, 1),
                          exact=exact_match(line, task.canonical),
                          similarity=edit_similarity(normalize_line(line), normalize_line(task.canonical)))
        return attempt, self.pool.submit(run_program, program(task, line), self.timeout_s)


async def _no_wait(seconds: float) -> None:
    """`server-typed`'s debounce: its work ahead is what is measured, not the wait."""


def summarize(attempts: list[Attempt]) -> dict[str, object]:
    """pass@1, exact match and edit similarity with 95% intervals; latency median and p95."""
    n = len(attempts)
    passed = sum(a.passed for a in attempts)
    exact = sum(a.exact for a in attempts)
    similarity = [a.similarity for a in attempts]
    latency = [a.latency_ms for a in attempts]
    return {
        "tasks": n,
        "passed": passed,
        "pass_at_1": passed / n,
        "pass_at_1_ci": wilson_interval(passed, n),
        "exact": exact,
        "exact_match": exact / n,
        "exact_match_ci": wilson_interval(exact, n),
        "edit_similarity": mean(similarity),
        "edit_similarity_ci": bootstrap_interval(similarity, mean),
        "latency_p50_ms": median(latency),
        "latency_p50_ci": bootstrap_interval(latency, median),
        "latency_p95_ms": p95(latency),
        "latency_p95_ci": bootstrap_interval(latency, p95),
        "empty": sum(not a.completion.strip() for a in attempts),
        "timeouts": sum(a.status == "timeout" for a in attempts),
    }


def compare(first: list[Attempt], second: list[Attempt]) -> dict[str, object]:
    """Paired comparison of two paths on the same tasks: discordant counts, McNemar, difference CI."""
    pairs = [(a.passed, b.passed) for a, b in zip(first, second, strict=True)]
    only_first = sum(a and not b for a, b in pairs)
    only_second = sum(b and not a for a, b in pairs)

    def difference(sample: list[tuple[bool, bool]]) -> float:
        return sum(b - a for a, b in sample) / len(sample)

    return {
        "only_first": only_first,
        "only_second": only_second,
        "difference": difference(pairs),
        "difference_ci": bootstrap_interval(pairs, difference),
        "mcnemar_p": mcnemar_exact(only_first, only_second),
        "same_line": sum(normalize_line(a.completion) == normalize_line(b.completion) for a, b in zip(first, second)),
    }


def _progress(done: int, total: int, by_path: dict[str, list[Attempt]], started: float) -> None:
    elapsed = time.perf_counter() - started
    parts = []
    for path, attempts in by_path.items():
        finished = [a for a in attempts if a.status]
        if finished:
            parts.append(f"{path} pass {100 * sum(a.passed for a in finished) / len(finished):.1f}% "
                         f"em {100 * sum(a.exact for a in finished) / len(finished):.1f}%")
    eta = elapsed / done * (total - done)
    print(f"[{done}/{total}] {' | '.join(parts)} | {elapsed:.0f}s elapsed, ~{eta:.0f}s left", file=sys.stderr, flush=True)


def run(
    tasks: list[Task],
    model: CodeModel,
    paths: Iterable[str] = ("engine", "server"),
    *,
    options: CompletionOptions | None = None,
    timeout_s: float = 5.0,
    jobs: int = 1,
    progress_every: int = 25,
    trace_limit: int = 60,
) -> dict[str, object]:
    """Run every path on every task (interleaved, so that both see the same machine load)."""
    paths = list(paths)
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise ValueError(f"unknown paths {unknown}; choose from {PATHS}")
    if "engine-infill" in paths and not can_infill(model):
        raise ValueError(f"{model.preset.name} cannot infill (no FIM tokens or span infilling): "
                         "the engine-infill path needs a model that can")
    options = options or CompletionOptions()
    runner = Runner(model, options, timeout_s, jobs)
    by_path: dict[str, list[Attempt]] = {p: [] for p in paths}
    pending: list[tuple[Attempt, Future[Outcome]]] = []
    started = time.perf_counter()
    try:
        for i, task in enumerate(tasks, 1):
            for path in paths:
                attempt, outcome = runner.attempt(task, path)
                by_path[path].append(attempt)
                pending.append((attempt, outcome))
            for attempt, outcome in [p for p in pending if p[1].done()]:
                _record(attempt, outcome.result())
            pending = [p for p in pending if not p[1].done()]
            if i % progress_every == 0 or i == len(tasks):
                _progress(i, len(tasks), by_path, started)
        for attempt, outcome in pending:
            _record(attempt, outcome.result())
        traces = _trace_losses(model, tasks, by_path, options, trace_limit)
    finally:
        runner.close()
    result: dict[str, object] = {
        "tasks": len(tasks),
        "paths": paths,
        "settings": {"context_tokens": options.context_tokens, "max_new_tokens": options.max_new_tokens,
                     "completion_mode": options.mode, "time_budget_ms": options.time_budget_ms},
        "timeout_s": timeout_s,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": {p: summarize(a) for p, a in by_path.items()},
        "attempts": {p: [asdict(a) for a in attempts] for p, attempts in by_path.items()},
        "traces": traces,
    }
    if "engine" in paths:
        result["comparison"] = {p: compare(by_path["engine"], by_path[p]) for p in paths if p != "engine"}
    return result


def _record(attempt: Attempt, outcome: Outcome) -> None:
    attempt.passed, attempt.status, attempt.detail = outcome.passed, outcome.status, outcome.detail


def _trace_losses(
    model: CodeModel, tasks: list[Task], by_path: dict[str, list[Attempt]], options: CompletionOptions, limit: int
) -> list[dict[str, object]]:
    """Stage traces of the tasks the engine passes and a server path fails (at most `limit`)."""
    if "engine" not in by_path:
        return []
    traces = []
    for path in (p for p in by_path if p.startswith("server")):
        for task, engine, server in zip(tasks, by_path["engine"], by_path[path]):
            if len(traces) >= limit:
                return traces
            if engine.passed and not server.passed:
                trace = trace_server(model, task, editor_view(task, path == "server-indented"), options)
                traces.append({"task_id": task.task_id, "path": path, "engine": engine.completion,
                               "server": server.completion,
                               "cause": loss_cause(trace, engine.completion), **asdict(trace)})
    return traces


def loss_cause(trace: StageTrace, engine: str) -> str:
    """The first stage of the server path whose output departs from the engine's line."""
    if not trace.prompt_is_task_prompt:
        return "context (prompt differs)"
    if normalize_line(trace.raw_unstopped_line) != normalize_line(engine):
        return "model (same prompt, different text: healing or engine state)"
    if trace.multiline and normalize_line(first_line(trace.raw)) == normalize_line(engine):
        return "block mode (syntax asked for a block: lines after the engine's)"
    if not trace.raw.strip() and engine[:1] == "\n":
        return "stop rule (a blank line before the code: nothing kept)"
    if normalize_line(trace.raw) != normalize_line(engine):
        return "stop rule"
    if trace.final is None or normalize_line(trace.final) != normalize_line(trace.raw):
        return f"post-processing ({trace.first_changing_stage})" if trace.first_changing_stage else "post-processing"
    return "indentation or whitespace"


def check_canonical(tasks: list[Task], timeout_s: float = 5.0, jobs: int = 2) -> list[str]:
    """Task ids whose canonical line fails its own test program (the harness should give none)."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = list(pool.map(lambda t: run_program(program(t, t.canonical.rstrip("\n")), timeout_s), tasks))
    return [t.task_id for t, o in zip(tasks, outcomes) if not o.passed]

