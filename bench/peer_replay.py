"""llama.cpp as a peer through the keystroke replay: the same keys, the same prompts, the same GGUF.

Our side is the replay as it is (`bench.replay.run`: a fresh `python -m lsp_server` over stdio,
the server's own settings). The peer is llama.cpp (llama-cpp-python, one `Llama` object in a child
process run by another Python, `bench/llama_worker.py`) behind this project's own completion
pipeline, run in this process: the same context building, prompt (left to right for the Qwen
default, healed, cut to the same budget: the engine gets the token ids our CTranslate2 engine
would get), stop rule, `max_new_tokens`, time budget, post-processing and typed-ahead cache; only
the engine differs, and the peer keeps llama.cpp's prefix KV reuse (the longest common token
prefix with what it evaluated last stays cached) instead of our static-prompt cache.

Every key sends a request at once (no debounce, as llama.vim does on every cursor move unless
`debounce_ms` says otherwise); a newer key makes the older requests stale, as in our server: one
not started yet never reaches llama.cpp, one running stops at its next token (the worker computes a
token only when the pipeline asks for it; a prompt pass that has started runs to its end), and
the replay never waits for a stale request: it comes back empty ("superseded"). No speculative
next suggestion on the peer's side.

Times are taken the same way on both sides: from the moment a key's request is made to its answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from inference.completion.options import CompletionOptions
from inference.completion.pipeline import CompletionPipeline, CompletionRequest, Job
from inference.completion.typeahead import TypeaheadCache
from inference.engines.healed_generation import FirstTokenRejected
from inference.engines.stream import JobStopped
from inference.engines.tokenizer import CodeTokenizer

from . import replay
from .replay import Request, Scenario, _Document, classify, document_and_keys, next_key, summarize

WORKER = Path(__file__).resolve().parent / "llama_worker.py"
T = TypeVar("T")


PEERS = ("llama-cpp-python", "llama-server /completion", "llama-server /infill")


@dataclass
class PeerSetup:
    """Which llama.cpp, where it comes from and how it runs."""

    engine: str  # one of PEERS
    program: Path  # a Python with llama-cpp-python installed, or the llama-server binary
    gguf: Path
    threads: int = 2
    context: int = 2048  # llama.cpp's n_ctx: the default model's window
    debounce_ms: int = 0  # the peer's debounce (llama.vim: none)


class LlamaCppEngine:
    """A `DecoderBackend` (inference.engines.engine_protocols) served by `bench/llama_worker.py`.

    One generation at a time; each id is asked for only when the previous one was consumed, so a
    generation that is closed stops before computing another. `jobs` records what the worker
    reports per generation (prompt ids, ids reused from its KV cache, prompt and decode ms).

    The worker inherits the environment (LLAMA_CPP_LIB_PATH: a libllama built apart).
    """

    def __init__(self, setup: PeerSetup, tokenizer: CodeTokenizer) -> None:
        self.tokenizer = tokenizer
        self.jobs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [str(setup.program), str(WORKER), str(setup.gguf), str(setup.threads), str(setup.context)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"llama.cpp worker did not start: {ready}")

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"llama.cpp worker exited ({self.process.wait()})")
        return json.loads(line)

    def tokenize(self, text: str) -> list[int]:
        """llama.cpp's own token ids of `text` (to check that both sides share the vocabulary)."""
        with self._lock:
            self._send({"op": "tokenize", "text": text})
            return self._read()["ids"]

    def _end_ids(self, end_tokens: list[str]) -> list[int]:
        return [i for i in (self.tokenizer.token_id(t) for t in end_tokens) if i is not None]

    def _generate(self, prompt_ids: list[int], max_new_tokens: int, end_tokens: list[str],
                  accept_first: Callable[[int], bool] | None = None, k: int = 0) -> Iterator[int]:
        with self._lock:
            self._send({"op": "generate", "ids": list(prompt_ids), "max": max_new_tokens,
                        "end": self._end_ids(end_tokens), "k": k if accept_first else 0})
            done = False
            try:
                first = True
                while True:
                    message = self._read()
                    if "done" in message:
                        done = True
                        self.jobs.append(message)
                        return
                    if first and accept_first is not None and not accept_first(message["token"]):
                        raise FirstTokenRejected(message["top"])
                    first = False
                    yield message["token"]
                    self._send({"op": "next"})
            finally:
                if not done:  # closed after an id: the worker waits for this answer, then reports
                    self._send({"op": "stop"})
                    self.jobs.append(self._read())

    def stream(self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str]) -> Iterator[int]:
        return self._generate(prompt_ids, max_new_tokens, end_tokens)

    def stream_checked(self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str],
                       accept_first: Callable[[int], bool], k: int) -> Iterator[int]:
        return self._generate(prompt_ids, max_new_tokens, end_tokens, accept_first, k)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _Host:
    """The peer's model and its single worker slot."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.lock = asyncio.Lock()


class _PeerWorker:
    """The pipeline's `Worker` for one request: runs its job on the host's model in a thread, one
    job at a time; a request already stale when its turn comes never starts."""

    def __init__(self, host: _Host, stale: Callable[[], bool]) -> None:
        self.host = host
        self.stale = stale

    async def model(self) -> Any:
        return self.host.model

    async def run(self, job: Job[T]) -> T:
        async with self.host.lock:
            if self.stale():
                raise JobStopped("stale before its job started")
            return await asyncio.to_thread(job, self.host.model, threading.Event())


async def _peer_replay(scenario: Scenario, host: _Host, options: CompletionOptions) -> dict[str, Any]:
    source = scenario.path.read_text(encoding="utf-8")
    opening, line, character, keys = document_and_keys(source, scenario)
    uri = scenario.path.resolve().as_uri()
    pipeline = CompletionPipeline(TypeaheadCache())
    document = _Document(opening)
    latest = 0

    async def ask(line: int, character: int) -> tuple[str, bool]:
        """The suggestion at the cursor ("" for none or superseded) and whether the cache served it."""
        nonlocal latest
        latest += 1
        mine = latest
        request = CompletionRequest(uri, document.text, line, character, "python", options, automatic=True)

        def stale() -> bool:
            return latest != mine

        try:
            suggestion = await pipeline.suggest(request, _PeerWorker(host, stale), stale=stale)
        except JobStopped:
            return "", False
        return (suggestion.text, suggestion.from_cache) if suggestion else ("", False)

    cold_start = time.perf_counter()
    cold, _ = await ask(line, character)
    cold_ms = (time.perf_counter() - cold_start) * 1000
    requests: list[Request] = []
    pending: list[asyncio.Task] = []
    began = time.perf_counter()

    async def track(request: Request, answer: asyncio.Task) -> None:
        request.text, request.cache_hit = await answer
        request.latency_ms = (time.perf_counter() - began - request.sent_s) * 1000

    index = 0
    while index < len(keys):
        key, index, kind = next_key(keys, index, requests, scenario.accept)
        document.insert(key.line, key.character, key.text)
        cursor_line, cursor_char = key.end
        request = Request(len(requests), cursor_line, cursor_char, kind, time.perf_counter() - began, key.delay_ms)
        requests.append(request)
        pending.append(asyncio.ensure_future(track(request, asyncio.ensure_future(ask(cursor_line, cursor_char)))))
        await asyncio.sleep(key.delay_ms / 1000)
    await asyncio.gather(*pending)
    typing_s = time.perf_counter() - began
    if document.text != source:
        raise AssertionError("the replayed document differs from the file")
    classify(requests)
    return {"cold_request_ms": round(cold_ms, 1), "cold_suggestion": cold, "typing_s": round(typing_s, 1),
            "requests": [asdict(r) for r in requests]}


def peer_model(setup: PeerSetup, model: str = "default") -> tuple[Any, Any]:
    """Our model `model` (prompts, tokenizer, healing) with its engine replaced by the peer's."""
    from inference import load_model

    from .llama_server_peer import LlamaServer, LlamaServerEngine

    code_model = load_model(model, local_files_only=True, cpu_threads=setup.threads)
    if setup.engine == "llama-cpp-python":
        engine: Any = LlamaCppEngine(setup, code_model.tokenizer)
    else:
        server = LlamaServer(setup.program, setup.gguf, setup.threads, setup.context)
        engine = LlamaServerEngine(server, code_model.tokenizer, setup.engine.removeprefix("llama-server "))
    code_model._engine = engine  # the CTranslate2 engine goes; everything before and after it stays ours
    return code_model, engine


def run_peer(scenario: Scenario, setup: PeerSetup, *, model: str = "default", context_tokens: int = 1024) -> dict[str, Any]:
    """Replay `scenario` against llama.cpp behind our pipeline, with the server's default options
    (line mode, as the replay's server gets) but the peer's own debounce."""
    from lsp_server.config import Settings

    options = replace(Settings(context_tokens=context_tokens, completion_mode="line").completion_options(),
                      debounce_ms=setup.debounce_ms)
    launched = time.perf_counter()
    code_model, engine = peer_model(setup, model)
    try:
        ready_s = time.perf_counter() - launched
        sample = scenario.path.read_text(encoding="utf-8")[:4000]
        vocabulary_agrees = engine.tokenize(sample) == code_model.tokenizer.encode(sample)
        raw = asyncio.run(_peer_replay(scenario, _Host(code_model), options))
    finally:
        engine.close()
    jobs = engine.jobs
    evaluated = [j for j in jobs if j["reused"] is not None]
    return {
        "options": asdict(options), "setup": {**asdict(setup), "program": str(setup.program), "gguf": str(setup.gguf),
                                             "gguf_sha256": _sha256(setup.gguf)},
        "ready_s": round(ready_s, 2), "vocabulary_agrees": vocabulary_agrees,
        **{k: v for k, v in raw.items() if k != "requests"},
        "jobs": {"count": len(jobs), "stopped": sum(j["done"] == "stop" for j in jobs),
                 "prompt_ids": sum(j["prompt"] for j in evaluated), "reused_ids": sum(j["reused"] for j in evaluated),
                 "prompt_ms": [j["prompt_ms"] for j in jobs], "decode_ms": [j["decode_ms"] for j in jobs],
                 "evaluated_ids": [j["prompt"] - j["reused"] for j in evaluated]},
        "summary": summarize(raw["requests"]),
        "requests": raw["requests"],
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, float | None]:
    """ours / peer of the headline times (below 1: ours is faster; the issue's goal is <= 1 / 1.5)."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    def get(result: dict[str, Any], *path: str) -> float | None:
        value: Any = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return {
        "cold_request": ratio(ours["cold_request_ms"], peer["cold_request_ms"]),
        **{f"pause_to_suggestion_{p}": ratio(get(ours, "summary", "pauses", "time_to_suggestion", f"{p}_ms"),
                                             get(peer, "summary", "pauses", "time_to_suggestion", f"{p}_ms")) for p in ("p50", "p95")},
        **{f"model_runs_{p}": ratio(get(ours, "summary", "model_runs", f"{p}_ms"), get(peer, "summary", "model_runs", f"{p}_ms"))
           for p in ("p50", "p95")},
    }


def side_by_side(scenario: Scenario, peers: list[PeerSetup], *, model: str = "default", context_tokens: int = 1024,
                 ours_first: bool = True, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """`scenario` replayed by our server (its default settings) and by each peer, one after the
    other (ours first or last), each with its machine line and load."""
    from .machine import LoadSampler, machine_info

    sides = [None, *peers] if ours_first else [*peers, None]
    runs: dict[str, Any] = {}
    for setup in sides:
        name = "ours" if setup is None else setup.engine
        machine = machine_info()
        with LoadSampler() as load:
            if setup is None:
                result = replay.run(scenario, model=model, context_tokens=context_tokens)
            else:
                result = run_peer(scenario, setup, model=model, context_tokens=context_tokens)
        result.update(machine=machine, load=load.summary())
        runs[name] = result
        if progress:
            s = result["summary"]
            progress(f"{name}: cold {result['cold_request_ms']:.0f} ms, pauses {s['pauses']['with_suggestion_visible']}/"
                     f"{s['pauses']['count']} with a suggestion visible, to suggestion p50 "
                     f"{s['pauses']['time_to_suggestion'].get('p50_ms')} ms, model runs p50 {s['model_runs'].get('p50_ms')} ms")
    return {"order": list(runs), "runs": runs,
            "ours_over_peer": {name: ratios(runs["ours"], run) for name, run in runs.items() if name != "ours"}}


def markdown(name: str, data: dict[str, Any]) -> list[str]:
    """RESULTS.md lines for one `replay-<name>-peers.json`."""
    from .stats import format_interval, markdown_table

    def ms(figures: dict[str, Any], key: str) -> str:
        if not figures.get("count"):
            return "-"
        return f"{figures[f'{key}_ms']:.0f} {format_interval(*figures[f'{key}_ci'], digits=0)}"

    runs = data["runs"]
    ours = runs["ours"]
    scenario = ours["scenario"]
    rows = []
    for side in data["order"]:
        run = runs[side]
        s, pauses = run["summary"], run["summary"]["pauses"]
        if side == "ours":
            cache = run.get("server_prompt_cache") or {}
            if "reused_ids" in cache:  # ONNX Runtime: prefix reuse, counted in ids
                label = "ours: ONNX Runtime int8, the server's defaults"
                total = cache["reused_ids"] + cache["computed_ids"]
                reuse = f"{cache['reused_ids']} of {total} prompt ids reused"
            else:
                label = "ours: CTranslate2 int8, the server's defaults"
                reuse = f"static prompt hit / fill {cache.get('hits', 0)} / {cache.get('fills', 0)}"
        else:
            jobs = run["jobs"]
            label = f"{side} Q4_K_M behind our pipeline, debounce {run['options']['debounce_ms']} ms"
            reuse = f"{jobs['reused_ids']} of {jobs['prompt_ids']} prompt ids reused" if jobs["prompt_ids"] else "-"
        rows.append([
            label, f"{run['load']['mean']:.1f}", f"{run['cold_request_ms']:.0f}",
            f"{pauses['with_suggestion_visible']}/{pauses['count']} {format_interval(*pauses['visible_ci'], scale=100, digits=0)}",
            ms(pauses["time_to_suggestion"], "p50"), ms(pauses["time_to_suggestion"], "p95"),
            f"{s['model_runs'].get('p50_ms', '-')} / {s['model_runs'].get('p95_ms', '-')} (n={s['model_runs']['count']})",
            f"{s['shown']}", f"{100 * s['superseded_share']:.0f}%", reuse,
        ])
    lines = [f"#### `{name}` (`{data['command'].strip()}`)", "",
             f"{scenario['lines']} lines of `{Path(scenario['path']).name}` from line {scenario['start_line']}, pause chance "
             f"{scenario['pause_chance']}, the typist {'accepts' if scenario['accept'] else 'never accepts'} a suggestion the "
             f"next keys would type; run in this order: {', '.join(data['order'])}. {ours['machine']['cpu']}, "
             f"{ours['machine']['cores']} cores, commit {ours['machine']['commit']}, {ours['machine']['date']}; "
             "load = mean 1-min load average while each side ran.", "",
             markdown_table(["side", "load", "cold request ms", "pauses ending with a suggestion visible [95% CI]",
                             "pause to suggestion p50 ms [95% CI]", "p95 ms [95% CI]", "model runs p50 / p95 ms",
                             "suggestions shown", "superseded", "KV reuse"], rows), ""]
    def count(run: dict[str, Any], figures: str) -> int:
        summary = run["summary"]
        return (summary["pauses"]["time_to_suggestion"] if figures == "pauses" else summary["model_runs"])["count"]

    for peer, r in data["ours_over_peer"].items():
        lines.append(f"- ours / {peer}: " + ", ".join(
            f"{label} {r[key] if r[key] is not None else '-'}" + (f" (n={count(ours, n)} vs {count(runs[peer], n)})" if n else "")
            for key, label, n in (
                ("cold_request", "cold request", ""), ("pause_to_suggestion_p50", "pause to suggestion p50", ""),
                ("pause_to_suggestion_p95", "p95", "pauses"), ("model_runs_p50", "model runs p50", ""),
                ("model_runs_p95", "p95", "runs"))))
    return [*lines, ""]
