"""Keystroke replay: type a real file into the real server over stdio, as an editor would.

The document is a file this project did not write (a standard-library module) with a run of its
lines removed; the replay puts the cursor at the end of the line before them and types them
back: Enter (with the line's indentation, as an editor's auto-indent would insert it) and then
each character, one incremental `didChange` per keystroke, each followed by an inline
completion request that is not awaited before the next key. The server cancels older requests
for the document itself; those come back empty ("superseded").

Requests are classified when they return:
- shown: a suggestion came back;
- empty: no suggestion, and no newer request had been sent yet (the server had nothing);
- superseded: no suggestion, and a newer request was already out (cancelled by the server).
Cache hits are told apart on the client by replaying the server's own typed-ahead rule
(`TypeaheadCache`) over the suggestions received; the server's own counters (`codet5.status`)
give the hit rate reported, speculative hits apart.

A scenario may pause in the middle of lines too (`pause_chance`), and with `accept` the typist
takes a suggestion on screen that the next keys would type (Tab: one change inserts it, and an
automatic request follows at its end), as a user does. A pause is a key followed by at least
`PAUSE_MS` without a key: its time to suggestion is that key's request's latency when it brought
a suggestion, and it ends with a suggestion visible when that arrived before the next key.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import psutil
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from inference.completion.typeahead import TypeaheadCache

from .stats import bootstrap_interval, median, p95, wilson_interval

STDLIB = Path(sysconfig.get_paths()["stdlib"])
PAUSE_MS = 300.0  # a gap without a key at least this long is a pause
KEY_MS = (60.0, 120.0)  # a typist's pause between keys, uniform (a `Scenario`'s default; bench.daemon_load's paced editors)
LINE_END_MS = (400.0, 1200.0)  # and before an Enter
CLIENT_DEBOUNCE = "clientDebounceMs"  # a variant's key for `Scenario.client_debounce_ms`
# Server settings of the compared variants: the speed mechanisms of issue 13 off, and the defaults.
VARIANTS: dict[str, dict[str, Any]] = {
    "before": {"debounceMs": 0, "timeBudgetMs": 0, "speculative": False, "prewarm": False}, "after": {},
    **{f"debounce{ms}": {"debounceMs": ms} for ms in (0, 50, 100, 150, 200)},
    **{f"budget{ms}": {"timeBudgetMs": ms} for ms in (0, 500, 800, 1000)},
    "no-speculation": {"speculative": False},
    "no-prewarm": {"prewarm": False},  # neither the prompt at a resting cursor nor a typed request's while it waits
    "no-other-files": {"otherFiles": False},
    "no-drafts": {"draftTokens": 0},
    "int4": {"computeType": "int4"},
    **{runtime: {"runtime": runtime} for runtime in ("ctranslate2", "onnxruntime")},
    **{f"d{d}-b{b}": {"debounceMs": d, "timeBudgetMs": b} for d in (0, 50, 100, 150) for b in (800, 1000, 1500)},
    # the editor's side, not sent to the server: Neovim's plugin (ghost.lua) asks `debounce_ms` after the last key
    **{f"client{ms}": {CLIENT_DEBOUNCE: ms} for ms in (0, 30, 50, 100, 150)},
}


@dataclass(frozen=True)
class Scenario:
    """Which file to type, where, and how fast."""

    name: str
    path: Path
    start_line: int  # 1-based: the first line typed
    lines: int  # how many lines are typed
    key_ms: tuple[float, float] = KEY_MS  # pause between keys, uniform
    line_end_ms: tuple[float, float] = LINE_END_MS  # pause before Enter (reading, thinking)
    seed: int = 0
    pause_chance: float = 0.0  # chance that a key in a line is followed by a thinking pause
    pause_ms: tuple[float, float] = (300.0, 1200.0)  # such a pause, uniform
    accept: bool = False  # take a suggestion on screen that the next keys would type
    others: tuple[Path, ...] = ()  # opened in the editor before the typed file (context from other files)
    client_debounce_ms: float = 0.0  # the editor asks only after this long without a key (0: at every key, as VS Code)


SCENARIOS = {
    "small": Scenario("small", STDLIB / "textwrap.py", start_line=300, lines=30),
    "large": Scenario("large", STDLIB / "inspect.py", start_line=3290, lines=30),
}


@dataclass(frozen=True)
class Keystroke:
    line: int  # 0-based cursor position before the key (Python characters)
    character: int
    text: str  # inserted text: one character, or "\n" + indentation for Enter
    delay_ms: float  # pause after this key

    @property
    def end(self) -> tuple[int, int]:
        """The cursor (line, character) once the text is inserted."""
        if "\n" in self.text:
            return self.line + self.text.count("\n"), len(self.text) - self.text.rfind("\n") - 1
        return self.line, self.character + len(self.text)


@dataclass
class Request:
    index: int
    line: int
    character: int
    key: str  # char, enter, accept
    sent_s: float  # since typing began
    pause_after_ms: float = 0.0  # the wait before the next key
    latency_ms: float | None = None
    text: str | None = None  # the suggestion ("" for none)
    outcome: str = ""  # shown / empty / superseded
    next_key_s: float | None = None  # when the next key was typed (None: the next request's `sent_s`)
    cache_hit: bool = False  # as the client-side replay of the typed-ahead rule says
    visible_before_next_key: bool = False


def document_and_keys(source: str, scenario: Scenario) -> tuple[str, int, int, list[Keystroke]]:
    """The opening document (the typed lines removed), the cursor (line, character), and the keys.

    Typing the keys at the cursor gives back `source` exactly.
    """
    lines = source.splitlines(keepends=True)
    first = scenario.start_line - 1
    if not 1 <= first <= len(lines) - scenario.lines:
        raise ValueError(f"{scenario.path.name} has {len(lines)} lines: cannot type {scenario.lines} from line {scenario.start_line}")
    typed = [ln.rstrip("\r\n") for ln in lines[first: first + scenario.lines]]
    head = "".join(lines[:first])
    if not head.endswith("\n"):
        raise ValueError("the line before the typed ones must end with a newline")
    document = head[:-1] + "\n" + "".join(lines[first + scenario.lines:])
    rng = random.Random(scenario.seed)
    keys: list[Keystroke] = []
    line, character = first - 1, len(lines[first - 1].rstrip("\r\n"))
    for text in typed:
        body = text.lstrip(" \t")
        indent = text[: len(text) - len(body)] if body else ""
        if keys:
            keys[-1] = Keystroke(keys[-1].line, keys[-1].character, keys[-1].text, rng.uniform(*scenario.line_end_ms))
        keys.append(Keystroke(line, character, "\n" + indent, rng.uniform(*scenario.key_ms)))
        line, character = line + 1, len(indent)
        for ch in body:
            pause = scenario.pause_chance > 0 and rng.random() < scenario.pause_chance
            keys.append(Keystroke(line, character, ch, rng.uniform(*(scenario.pause_ms if pause else scenario.key_ms))))
            character += 1
    return document, first - 1, len(lines[first - 1].rstrip("\r\n")), keys


def next_key(keys: list[Keystroke], index: int, requests: list[Request], accept: bool) -> tuple[Keystroke, int, str]:
    """The change typed at `keys[index]`, the index after it and its kind (char, enter, accept).

    With `accept`, the suggestion on screen (the last request's, once answered, if it was asked at
    the cursor) is taken when the next keys of the line would type it (Tab: one change inserts it).
    """
    key = keys[index]
    last = requests[-1] if requests else None
    shown = last.text if last and last.latency_ms is not None and (last.line, last.character) == (key.line, key.character) else None
    if accept and shown and "\n" not in key.text:
        end = next((i for i in range(index, len(keys)) if "\n" in keys[i].text), len(keys))
        if "".join(k.text for k in keys[index:end]).startswith(shown):
            return Keystroke(key.line, key.character, shown, keys[index + len(shown) - 1].delay_ms), index + len(shown), "accept"
    return key, index + 1, "enter" if "\n" in key.text else "char"


def _utf16(line_text: str, character: int) -> int:
    return len(line_text[:character].encode("utf-16-le")) // 2


class _Document:
    """The client's copy of the document, with LSP positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.version = 1

    def offset(self, line: int, character: int) -> int:
        starts = 0
        for _ in range(line):
            starts = self.text.index("\n", starts) + 1
        return starts + character

    def position(self, line: int, character: int) -> types.Position:
        start = self.offset(line, 0)
        end = self.text.find("\n", start)
        return types.Position(line=line, character=_utf16(self.text[start: end if end >= 0 else len(self.text)], character))

    def insert(self, line: int, character: int, text: str) -> types.DidChangeTextDocumentParams:
        at = self.position(line, character)
        offset = self.offset(line, character)
        self.text = self.text[:offset] + text + self.text[offset:]
        self.version += 1
        return types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri="", version=self.version),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=text)],
        )


class _Client(LanguageClient):
    """A LanguageClient that follows the server's `codet5/status` notifications."""

    def __init__(self) -> None:
        super().__init__("codet5-lsp-bench", "0")
        self.state = ""
        self.ready = asyncio.Event()

        @self.feature("codet5/status")
        def status(params: Any) -> None:
            state = params.get("state") if isinstance(params, dict) else getattr(params, "state", "")
            self.state = state
            if state in ("ready", "error"):
                self.ready.set()


class RssSampler:
    """Samples a process's resident set size in a background thread."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval_s
        self._stop = threading.Event()
        self.samples: list[tuple[float, int]] = []  # (seconds since start, bytes)
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.perf_counter() - self._start, self._process.memory_info().rss))
            except psutil.Error:
                return
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def current(self) -> int:
        """The RSS now (bytes); 0 once the process is gone."""
        try:
            return self._process.memory_info().rss
        except psutil.Error:
            return 0

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


def _cpu_seconds(pid: int) -> float:
    """The CPU time (user and system, all threads) that process `pid` has used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def classify(requests: list[Request]) -> None:
    """Set each answered request's outcome and whether it was visible before the next key."""
    for i, request in enumerate(requests):
        if request.latency_ms is None:
            continue
        arrived = request.sent_s + request.latency_ms / 1000
        next_sent = request.next_key_s if request.next_key_s is not None else (
            requests[i + 1].sent_s if i + 1 < len(requests) else float("inf"))
        if request.text:
            request.outcome = "shown"
        else:
            request.outcome = "superseded" if arrived >= next_sent else "empty"
        request.visible_before_next_key = bool(request.text) and arrived < next_sent


async def _replay(scenario: Scenario, server: list[str], options: dict[str, Any], log_file: Path) -> dict[str, Any]:
    source = scenario.path.read_text(encoding="utf-8")
    opening, line, character, keys = document_and_keys(source, scenario)
    uri = scenario.path.resolve().as_uri()
    client = _Client()
    launched = time.perf_counter()
    await client.start_io(*server, "--log-file", str(log_file))
    assert client._server is not None
    rss = RssSampler(client._server.pid)
    result: dict[str, Any] = {}
    try:
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(),
                                                             initialization_options=options))
        client.initialized(types.InitializedParams())
        await asyncio.wait_for(client.ready.wait(), 600)
        if client.state != "ready":
            raise RuntimeError(f"the server's model did not load (see {log_file})")
        ready_s = time.perf_counter() - launched
        rss_at_ready = rss.current()
        for other in scenario.others:
            client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
                uri=other.resolve().as_uri(), language_id="python", version=1, text=other.read_text(encoding="utf-8"))))
        document = _Document(opening)
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=opening)))

        def request_at(line: int, character: int) -> asyncio.Future:
            return client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=document.position(line, character),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic)))

        cold_start = time.perf_counter()
        cold = await request_at(line, character)
        cold_ms = (time.perf_counter() - cold_start) * 1000
        rss_after_first = rss.current()

        shadow = TypeaheadCache()
        requests: list[Request] = []
        pending: list[asyncio.Task] = []
        server_cpu_s = _cpu_seconds(client._server.pid)
        began = time.perf_counter()

        async def track(request: Request, future: asyncio.Future, prefix: str, suffix: str) -> None:
            answer = await future
            request.latency_ms = (time.perf_counter() - began - request.sent_s) * 1000
            request.text = answer.items[0].insert_text if answer and answer.items else ""
            if request.text and not request.cache_hit:
                shadow.store(uri, prefix, suffix, request.text)

        index = keys_typed = 0
        while index < len(keys):
            key, index, kind = next_key(keys, index, requests, scenario.accept)
            params = document.insert(key.line, key.character, key.text)
            params.text_document.uri = uri
            client.text_document_did_change(params)
            cursor_line, cursor_char = key.end
            offset = document.offset(cursor_line, cursor_char)
            prefix, suffix = document.text[:offset], document.text[offset:]
            typed_s = time.perf_counter() - began
            keys_typed += 1
            if requests and requests[-1].next_key_s is None:
                requests[-1].next_key_s = typed_s
            wait_ms = scenario.client_debounce_ms
            if key.delay_ms < wait_ms:  # the next key comes before the editor asks
                await asyncio.sleep(key.delay_ms / 1000)
                continue
            await asyncio.sleep(wait_ms / 1000)
            # `sent_s` is the key's time: the latency includes the editor's own wait
            request = Request(len(requests), cursor_line, cursor_char, kind, typed_s, key.delay_ms)
            request.cache_hit = shadow.lookup(uri, prefix, suffix) is not None
            requests.append(request)
            pending.append(asyncio.ensure_future(track(request, request_at(cursor_line, cursor_char), prefix, suffix)))
            await asyncio.sleep((key.delay_ms - wait_ms) / 1000)
        await asyncio.gather(*pending)
        typing_s = time.perf_counter() - began
        server_cpu_s = _cpu_seconds(client._server.pid) - server_cpu_s
        if document.text != source:
            raise AssertionError("the replayed document differs from the file")
        status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))
        classify(requests)
        result = {
            "ready_s": round(ready_s, 2),
            "cold_request_ms": round(cold_ms, 1),
            "cold_suggestion": cold.items[0].insert_text if cold.items else "",
            "typing_s": round(typing_s, 1),
            "typing_server_cpu_s": round(server_cpu_s, 2),
            "keys_typed": keys_typed,
            "server_cache": dict(status["cache"]),
            "server_prompt_cache": status.get("promptCache"),
            "server_stages": status.get("stages"),
            "server_no_suggestion": status["noSuggestion"]["counts"],
            "rss_at_ready_mb": round(rss_at_ready / 2**20, 1),
            "rss_after_first_request_mb": round(rss_after_first / 2**20, 1),
            "requests": [asdict(r) for r in requests],
        }
    finally:
        try:
            await asyncio.wait_for(client.shutdown_async(None), 30)
            client.exit(None)
        except Exception:  # the server may be gone already; stop() below reaps it
            pass
        await client.stop()
        rss.stop()
    result["rss_peak_mb"] = round(rss.peak / 2**20, 1)
    result["rss_samples"] = [(round(t, 2), round(b / 2**20, 1)) for t, b in rss.samples[:: max(1, len(rss.samples) // 2000)]]
    return result


def summarize(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Latency and outcome figures of one replay."""
    answered = [r for r in requests if r["latency_ms"] is not None]
    completed = [r for r in answered if r["outcome"] != "superseded"]
    model_runs = [r["latency_ms"] for r in completed if not r["cache_hit"]]
    hits = [r["latency_ms"] for r in completed if r["cache_hit"]]
    latency = [r["latency_ms"] for r in completed]
    superseded = sum(r["outcome"] == "superseded" for r in answered)
    visible = sum(r["visible_before_next_key"] for r in answered)
    pauses = [r for r in answered if r.get("pause_after_ms", 0.0) >= PAUSE_MS]
    to_suggestion = [r["latency_ms"] for r in pauses if r["text"]]
    accepted = [r for r in answered if r["key"] == "accept"]

    def figures(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"count": 0}
        return {"count": len(values), "p50_ms": round(median(values), 1), "p95_ms": round(p95(values), 1),
                "p50_ci": bootstrap_interval(values, median), "p95_ci": bootstrap_interval(values, p95)}

    return {
        "requests": len(requests),
        "shown": sum(r["outcome"] == "shown" for r in answered),
        "empty": sum(r["outcome"] == "empty" for r in answered),
        "superseded": superseded,
        "superseded_share": superseded / len(answered) if answered else 0.0,
        "superseded_ci": wilson_interval(superseded, len(answered)),
        "visible_before_next_key": visible,
        "visible_share": visible / len(answered) if answered else 0.0,
        "completed": figures(latency),
        "model_runs": figures(model_runs),
        "cache_hits": figures(hits),
        "pauses": {
            "count": len(pauses),
            "with_suggestion_visible": sum(r["visible_before_next_key"] for r in pauses),
            "visible_share": sum(r["visible_before_next_key"] for r in pauses) / len(pauses) if pauses else 0.0,
            "visible_ci": wilson_interval(sum(r["visible_before_next_key"] for r in pauses), len(pauses)),
            "time_to_suggestion": figures(to_suggestion),
            "time_to_answer": figures([r["latency_ms"] for r in pauses]),
        },
        "accepts": {"count": len(accepted), "next_shown": sum(bool(r["text"]) for r in accepted),
                    "next_latency": figures([r["latency_ms"] for r in accepted])},
    }


def run(scenario: Scenario, *, model: str = "default", context_tokens: int = 1024,
        settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replay `scenario` against a fresh `python -m lsp_server` (stdio), with these server
    `settings` on top of the replay's own, and summarize it."""
    source = scenario.path.read_text(encoding="utf-8")
    settings = dict(settings or {})
    if CLIENT_DEBOUNCE in settings:
        scenario = replace(scenario, client_debounce_ms=float(settings.pop(CLIENT_DEBOUNCE)))
    options = {"model": model, "contextTokens": context_tokens, "completionMode": "line", "localFilesOnly": True,
               **settings}
    server = [sys.executable, "-m", "lsp_server", "--offline"]
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        log_file = Path(tmp) / "server.log"
        raw = asyncio.run(_replay(scenario, server, options, log_file))
    cache = raw["server_cache"]
    lookups = cache["hits"] + cache["misses"]
    return {
        "scenario": {**asdict(scenario), "path": str(scenario.path), "others": [str(p) for p in scenario.others], "file_bytes": len(source.encode("utf-8")),
                     "file_lines": len(source.splitlines())},
        "options": options,
        "server": server,
        **{k: v for k, v in raw.items() if k != "requests"},
        "server_cache_hit_rate": cache["hits"] / lookups if lookups else 0.0,
        "server_speculative_hit_rate": cache.get("speculativeHits", 0) / lookups if lookups else 0.0,
        "summary": summarize(raw["requests"]),
        "requests": raw["requests"],
    }


def typing_states(scenario: Scenario) -> Iterator[tuple[str, int, int, str]]:
    """The document and cursor after each keystroke of `scenario`: (text, line, character, key kind)."""
    source = scenario.path.read_text(encoding="utf-8")
    opening, _, _, keys = document_and_keys(source, scenario)
    document = _Document(opening)
    for key in keys:
        document.insert(key.line, key.character, key.text)
        if "\n" in key.text:
            yield document.text, key.line + 1, len(key.text) - 1, "enter"
        else:
            yield document.text, key.line, key.character + 1, "char"


def variants_markdown(name: str, data: dict[str, Any]) -> list[str]:
    """RESULTS.md lines for one `replay-<name>-variants.json`: the variants side by side."""
    from .stats import format_interval, markdown_table

    def ms(figures: dict[str, Any]) -> str:
        return f"{figures['p50_ms']:.0f} / {figures['p95_ms']:.0f} (n={figures['count']})" if figures.get("count") else "-"

    runs = data["variants"]
    first = next(iter(runs.values()))
    scenario = first["scenario"]
    lines = [f"### Replay `{name}`, variants side by side (`{data['command'].strip()}`)", "",
             f"{scenario['lines']} lines of `{Path(scenario['path']).name}` from line {scenario['start_line']}, "
             f"typed in the middle of the file (its suffix present), pause chance {scenario['pause_chance']}, "
             f"the typist {'accepts' if scenario['accept'] else 'never accepts'} a suggestion the next keys would type; "
             f"model `{first['options']['model']}`, one fresh server per variant, one after another. "
             f"A pause is >= {PAUSE_MS:.0f} ms without a key. {first['machine']['cpu']}, {first['machine']['cores']} cores, "
             f"commit {first['machine']['commit']}, {first['machine']['date']}; load = mean 1-min load average while it ran."
             + (f" Note: {data['note']}." if data.get("note") else ""), ""]
    rows = []
    for variant, run in runs.items():
        s, cache, kv = run["summary"], run["server_cache"], run.get("server_prompt_cache") or {}
        stages = run.get("server_stages") or {}
        pauses = s["pauses"]
        keys = run.get("keys_typed", s["requests"])
        rows.append([
            f"`{variant}` {json.dumps(VARIANTS.get(variant, {}))}", f"{run['load']['mean']:.1f}", keys,
            f"{pauses['with_suggestion_visible']}/{pauses['count']} {format_interval(*pauses['visible_ci'], scale=100)}",
            ms(pauses["time_to_suggestion"]), ms(pauses["time_to_answer"]), ms(s["model_runs"]),
            f"{s['shown']}", f"{100 * s['superseded_share']:.0f}%",
            f"{stages.get('prompt', 0) / keys:.2f} / {stages.get('prefill', 0) / keys:.2f}" if keys else "-",
            f"{1000 * run['typing_server_cpu_s'] / keys:.0f}" if keys and "typing_server_cpu_s" in run else "-",
            f"{s['accepts']['next_shown']}/{s['accepts']['count']}",
            f"{cache['hits'] - cache.get('speculativeHits', 0)} / {cache.get('speculativeHits', 0)} of {cache['hits'] + cache['misses']}",
            f"{kv.get('hits', 0)} / {kv.get('fills', 0)} / {kv.get('refused', 0)}" if kv else "-",
            f"{kv['accepted_ids']} / {kv['drafted_ids']}" if "drafted_ids" in kv else "-",
        ])
    lines.append(markdown_table(
        ["variant (server settings; clientDebounceMs: the editor's)", "load", "keys", "pauses ending with a suggestion visible [95% CI]",
         "pause to suggestion p50 / p95 ms", "pause to any answer p50 / p95 ms", "completed model runs p50 / p95 ms",
         "suggestions shown", "superseded", "prompts built / prefilled ahead per key", "server CPU ms per key",
         "accepts followed by a suggestion",
         "typed-ahead / speculative hits", "KV prompt cache hit / fill / refused", "drafted ids kept / run"], rows))
    return [*lines, ""]
