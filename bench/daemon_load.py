"""N editors on one TCP daemon (N = 1, 2, 4, 8): completions per second and latency.

Each editor is a closed loop, so the figure is the daemon's capacity: it types the next lines of a
real standard-library file (as `bench.soak` does) but waits for the answer to each keystroke's
inline completion request before it types the next key. Nothing is cancelled or superseded, so
every answer counts; some are typed-ahead hits (the key matched the suggestion shown), counted from
each editor's `codet5.status`. With more editors than cached static prompts the engine's prompt
cache turns over, as it would. One daemon serves all the runs, one after another.

With `paced`, the editors type at a person's pace instead (`Editor`), and the figures are those of
their requests before a pause, what a person waits for; `variants` runs each editor count once per
set of editor settings (e.g. two debounces), one after the other on the same daemon.

With `greedy`, editor 0 asks for the most the settings allow (`GREEDY`: 512 new tokens, 16,384
context tokens, no debounce); the daemon's per-session limits should keep the other editors'
latency where it is without it. Each run reports every editor's p95 and the worst of the others'.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

from lsprotocol import types

from .replay import KEY_MS, LINE_END_MS, RssSampler
from .soak import FILES, STDLIB, _Client, _leave, _utf16, start_daemon, wait_until_ready
from .stats import median, p95

CLIENTS = (1, 2, 4, 8)
GREEDY = {"maxNewTokens": 512, "contextTokens": 16384, "debounceMs": 0}


class Editor:
    """One closed-loop editor: type a key, ask for a completion, wait for it, type the next key.

    `paced`: a person's pace instead (`bench.replay.Scenario`'s: KEY_MS between keys, LINE_END_MS
    before an Enter), asking at every key without waiting for the answer; only the requests before
    a pause (an Enter) count in `latencies_ms`, the wait a person sees."""

    def __init__(self, index: int, port: int, deadline: float, seed: int, lines: int = 12,
                 options: dict[str, Any] | None = None, paced: bool = False) -> None:
        self.index, self.port, self.deadline, self.lines, self.options = index, port, deadline, lines, options
        self.paced = paced
        self.rng = random.Random(seed * 1000 + index)
        self.latencies_ms: list[float] = []
        self.shown = 0
        self.cache_hits = 0
        self.failures: list[str] = []

    async def run(self) -> None:
        client = _Client()
        await client.start_tcp("127.0.0.1", self.port)
        try:
            await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(),
                                                                 initialization_options=self.options))
            client.initialized(types.InitializedParams())
            region = 0
            while time.monotonic() < self.deadline:
                await self._type_region(client, f"file:///load/editor{self.index}/region{region}.py")
                region += 1
            status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))
            self.cache_hits = status["cache"]["hits"]
        finally:
            await _leave(client)

    async def _type_region(self, client: _Client, uri: str) -> None:
        lines = (STDLIB / self.rng.choice(FILES)).read_text(encoding="utf-8").splitlines(keepends=True)
        start = self.rng.randrange(20, max(21, len(lines) - self.lines))
        text, typed = "".join(lines[:start]), "".join(lines[start:start + self.lines])
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        version = 1
        keys = re.findall(r"\n[ \t]*|[^\n]", typed)  # Enter comes with the next line's indentation
        answers: list[asyncio.Task] = []
        for number, key in enumerate(keys):
            if time.monotonic() >= self.deadline:
                break
            at = types.Position(line=text.count("\n"), character=_utf16(text.rsplit("\n", 1)[-1]))
            text += key
            version += 1
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=key)]))
            position = types.Position(line=text.count("\n"), character=_utf16(text.rsplit("\n", 1)[-1]))
            if not self.paced:
                self._count(await self._ask(client, uri, position))
                continue
            pause = number + 1 < len(keys) and keys[number + 1].startswith("\n")
            answers.append((asyncio.ensure_future(self._ask(client, uri, position)), pause))
            await asyncio.sleep(self.rng.uniform(*(LINE_END_MS if pause else KEY_MS)) / 1000)
        for number, (answer, pause) in enumerate(answers):
            latency_ms = await answer
            if pause or number == len(answers) - 1:  # the typist stops after the last: a pause too
                self._count(latency_ms)
        client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))

    def _count(self, latency_ms: float | None) -> None:
        if latency_ms is not None:
            self.latencies_ms.append(latency_ms)

    async def _ask(self, client: _Client, uri: str, position: types.Position) -> float | None:
        """An inline completion at `position`: how long its answer took (None: it failed)."""
        sent = time.perf_counter()
        try:
            result = await asyncio.wait_for(client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=position,
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic))), 300)
        except Exception as exc:  # an error response, no answer in time, a broken connection
            self.failures.append(f"editor {self.index}: {type(exc).__name__}: {exc}")
            return None
        self.shown += bool(result and result.items)
        return (time.perf_counter() - sent) * 1000


def _p95(latencies: list[float]) -> float | None:
    return round(p95(latencies), 1) if latencies else None


async def _one_run(port: int, pid: int, clients: int, seconds: float, seed: int, greedy: bool, paced: bool,
                   settings: dict[str, Any]) -> dict[str, Any]:
    rss = RssSampler(pid, interval_s=0.5)
    started = time.monotonic()
    editors = [Editor(i, port, started + seconds, seed, options=GREEDY if greedy and i == 0 else settings, paced=paced)
               for i in range(clients)]
    try:
        await asyncio.gather(*(e.run() for e in editors))
    finally:
        rss.stop()
    elapsed = time.monotonic() - started
    latencies = [ms for e in editors for ms in e.latencies_ms]
    failures = [f for e in editors for f in e.failures]
    return {"clients": clients, "seconds": round(elapsed, 1), "completions": len(latencies),
            "shown": sum(e.shown for e in editors), "cache_hits": sum(e.cache_hits for e in editors), "failed": len(failures), "failures": failures[:10],
            "completions_per_s": round(len(latencies) / elapsed, 2),
            "p50_ms": round(median(latencies), 1) if latencies else None,
            "p95_ms": _p95(latencies),
            "greedy_editor": greedy,
            "p95_ms_per_editor": [_p95(e.latencies_ms) for e in editors],
            "completions_per_editor": [len(e.latencies_ms) for e in editors],
            "worst_other_p95_ms": max((_p95(e.latencies_ms) or 0.0 for e in editors[1 if greedy else 0:]), default=None),
            "rss_peak_mb": round(rss.peak / 2**20, 1)}


async def _measure(model: str, clients: Sequence[int], seconds: float, threads: int | None, seed: int,
                   greedy: bool, runtime: str, compute_type: str, paced: bool,
                   variants: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    daemon_args = ["--model", model, "--offline", "--runtime", runtime, "--compute-type", compute_type,
                   *(["--threads", str(threads)] if threads else [])]
    process, port = await start_daemon(daemon_args, dict(os.environ))
    runs = []
    try:
        await wait_until_ready(port)
        for count in clients:
            for name, settings in variants.items():
                runs.append({"variant": name, "settings": settings,
                             **await _one_run(port, process.pid, count, seconds, seed, greedy, paced, settings)})
                print(f"bench load: {name}: {count} editors: {runs[-1]['completions_per_s']} completions/s, "
                      f"p50 {runs[-1]['p50_ms']} ms, p95 {runs[-1]['p95_ms']} ms, worst other editor's p95 "
                      f"{runs[-1]['worst_other_p95_ms']} ms, failed {runs[-1]['failed']}",
                      file=sys.stderr, flush=True)
    finally:
        process.terminate()
        await process.wait()
    return runs


def run(*, model: str = "default", clients: Sequence[int] = CLIENTS, seconds: float = 30.0,
        threads: int | None = None, seed: int = 0, greedy: bool = False, runtime: str = "auto",
        compute_type: str = "auto", paced: bool = False, variants: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Each number of editors in turn for `seconds` (editor 0 greedy with `greedy`; `paced`: at a
    person's pace, `Editor`) on a daemon with `runtime` and `compute_type`, once per variant (the
    editors' settings, by name; default: the server's own), one after another on the same daemon;
    the figures per run."""
    variants = variants or {"defaults": {}}
    return {"model": model, "runtime": runtime, "compute_type": compute_type, "seconds_per_run": seconds,
            "greedy_settings": GREEDY if greedy else None, "paced": paced,
            "runs": asyncio.run(_measure(model, clients, seconds, threads, seed, greedy, runtime, compute_type, paced, variants))}
