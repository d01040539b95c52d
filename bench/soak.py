"""Load and soak: several editors typing into one TCP daemon, with latency and memory figures.

Each client connects like an editor, opens a real file (a standard-library module, from a line
chosen at random) and types the next lines into it at the end, one incremental `didChange` per
keystroke, each followed by an inline completion request. Half the clients cancel their
previous request when they send a new one (as VS Code does), the others leave it to the server
(latest request per document wins). After each region a client closes its document and opens
another. The daemon's resident memory is sampled all along.

A request fails when it gets an error response other than RequestCancelled, or no response.
An empty answer that arrives after a newer request was sent counts as superseded.
Figures: requests by outcome, latency (p50/p95/max) of the answered ones, and RSS per minute
(per window), with the growth from minute 1 to the last minute (median of each).

`--middle` opens whole files and types a region back into its place (a suffix below the cursor,
as in real editing); `--abrupt` ends each client as an editor that quits does: shutdown while its
requests are still in flight, counting those that never got an answer (`unanswered_at_shutdown`);
`--pause-chance P` makes the typist stop for 0.5-3 s after a key with probability P, as people
do, so that suggestions are computed to the end (without pauses nearly every request is superseded);
`--hover-chance Q` makes a pause start, with probability Q, with a hover over the name of the last
function defined above the cursor (a summary, or its docstring), timed apart (`hover_*`).

`python -m bench.soak` runs the full soak (8 clients, 10 minutes, the embedded default model,
offline, `CODET5_LSP_CACHE` where it is cached) and writes `bench/results/soak.json`;
tests/reliability/test_daemon_load.py runs a short one on a tiny model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

from .machine import LoadSampler, machine_info
from .replay import RssSampler
from .stats import median, p95

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["textwrap.py", "inspect.py", "argparse.py", "json/decoder.py", "difflib.py", "csv.py", "shutil.py", "tarfile.py"]
REQUEST_CANCELLED = -32800
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Outcomes:
    """What the requests of all clients came to."""

    latencies_ms: list[float] = field(default_factory=list)  # answered requests (not cancelled)
    hover_ms: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"shown": 0, "empty": 0, "superseded": 0, "cancelled": 0, "failed": 0})
    failures: list[str] = field(default_factory=list)
    keystrokes: int = 0
    documents: int = 0
    unanswered_at_shutdown: int = 0

    def figures(self) -> dict[str, Any]:
        answered = self.latencies_ms
        return {
            "requests": sum(self.counts.values()), **self.counts, "keystrokes": self.keystrokes, "documents": self.documents,
            "p50_ms": round(median(answered), 1) if answered else None,
            "p95_ms": round(p95(answered), 1) if answered else None,
            "max_ms": round(max(answered), 1) if answered else None,
            "unanswered_at_shutdown": self.unanswered_at_shutdown,
            "hovers": len(self.hover_ms),
            "hover_p50_ms": round(median(self.hover_ms), 1) if self.hover_ms else None,
            "hover_p95_ms": round(p95(self.hover_ms), 1) if self.hover_ms else None,
            "hover_max_ms": round(max(self.hover_ms), 1) if self.hover_ms else None,
            "failures": self.failures[:20],
        }


class _Client(LanguageClient):
    def __init__(self) -> None:
        super().__init__("codet5-lsp-soak", "0")

        @self.feature("codet5/status")
        def status(params: Any) -> None:
            """The daemon's model status: not needed here."""


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Typist:
    """One editor: types regions of real files into the daemon until the deadline."""

    def __init__(self, index: int, port: int, deadline: float, outcomes: Outcomes, *, token: str | None,
                 key_ms: tuple[float, float], lines: int, seed: int, middle: bool = False, abrupt: bool = False,
                 pause_chance: float = 0.0, hover_chance: float = 0.0) -> None:
        self.index = index
        self.port = port
        self.deadline = deadline
        self.outcomes = outcomes
        self.token = token
        self.key_ms = key_ms
        self.lines = lines
        self.rng = random.Random(seed * 1000 + index)
        self.cancels = index % 2 == 0  # like VS Code: a new request cancels the previous one
        self.pending: set[asyncio.Future] = set()
        self.sent = 0  # requests sent so far
        self.middle = middle
        self.abrupt = abrupt
        self.pause_chance = pause_chance
        self.hover_chance = hover_chance
        self.in_flight: set[asyncio.Future] = set()  # the protocol's request futures not answered yet

    async def run(self) -> None:
        client = _Client()
        await client.start_tcp("127.0.0.1", self.port)
        try:
            options = {"token": self.token} if self.token else None
            await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(), initialization_options=options))
            client.initialized(types.InitializedParams())
            region = 0
            while time.monotonic() < self.deadline:
                await self._type_region(client, f"file:///soak/client{self.index}/region{region}.py")
                region += 1
            if not self.abrupt:
                await asyncio.gather(*self.pending, return_exceptions=True)
        finally:
            await _leave(client, self.outcomes, self.in_flight)

    def _region(self) -> tuple[str, str, str]:
        """(the text before the cursor: a file up to a random line, the lines to type there, the
        text after the cursor: the rest of the file with `--middle`, else nothing)."""
        lines = (STDLIB / self.rng.choice(FILES)).read_text(encoding="utf-8").splitlines(keepends=True)
        start = self.rng.randrange(20, max(21, len(lines) - self.lines))
        after = "".join(lines[start + self.lines:]) if self.middle else ""
        return "".join(lines[:start]), "".join(lines[start:start + self.lines]), after

    async def _type_region(self, client: _Client, uri: str) -> None:
        text, typed, after = self._region()
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text + after)))
        self.outcomes.documents += 1
        version, previous = 1, None
        for key in re.findall(r"\n[ \t]*|[^\n]", typed):  # Enter comes with the next line's indentation
            if time.monotonic() >= self.deadline:
                break
            last_line = text.rsplit("\n", 1)[-1]
            at = types.Position(line=text.count("\n"), character=_utf16(last_line))
            text += key  # the text before the cursor
            version += 1
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=key)]))
            self.outcomes.keystrokes += 1
            if previous is not None and self.cancels and not previous.done():
                previous.cancel()
            cursor = types.Position(line=text.count("\n"), character=_utf16(text.rsplit("\n", 1)[-1]))
            previous = asyncio.ensure_future(self._complete(client, uri, cursor))
            self.pending.add(previous)
            previous.add_done_callback(self.pending.discard)
            pause = self.rng.random() < self.pause_chance
            if pause and self.rng.random() < self.hover_chance:
                self._hover_soon(client, uri, text)
            await asyncio.sleep(self.rng.uniform(*((500.0, 3000.0) if pause else self.key_ms)) / 1000)
        client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))

    def _hover_soon(self, client: _Client, uri: str, before: str) -> None:
        """Hover, in the background, over the last function name defined in `before`."""
        names = list(re.finditer(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", before, re.MULTILINE))
        if not names:
            return
        start = names[-1].start(1)
        line = before.count("\n", 0, start)
        position = types.Position(line=line, character=_utf16(before[before.rfind("\n", 0, start) + 1:start]) + 1)
        task = asyncio.ensure_future(self._hover(client, uri, position))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _hover(self, client: _Client, uri: str, position: types.Position) -> None:
        sent = time.perf_counter()
        request = asyncio.ensure_future(client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position)))
        self.in_flight.add(request)
        request.add_done_callback(self.in_flight.discard)
        try:
            await asyncio.wait_for(request, 120)
        except JsonRpcException as exc:
            if exc.code != REQUEST_CANCELLED:
                self._fail(f"client {self.index}: hover {type(exc).__name__} {exc.code}: {exc}")
            return
        except Exception as exc:
            self._fail(f"client {self.index}: hover {type(exc).__name__}: {exc}")
            return
        self.outcomes.hover_ms.append((time.perf_counter() - sent) * 1000)

    async def _complete(self, client: _Client, uri: str, position: types.Position) -> None:
        self.sent += 1
        number, sent = self.sent, time.perf_counter()
        request = asyncio.ensure_future(client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic))))
        self.in_flight.add(request)
        request.add_done_callback(self.in_flight.discard)
        try:
            result = await asyncio.wait_for(request, 120)
        except asyncio.CancelledError:
            self.outcomes.counts["cancelled"] += 1
            raise
        except JsonRpcException as exc:
            if exc.code == REQUEST_CANCELLED:
                self.outcomes.counts["cancelled"] += 1
            else:
                self._fail(f"client {self.index}: {type(exc).__name__} {exc.code}: {exc}")
            return
        except Exception as exc:  # no response in time, a broken connection
            self._fail(f"client {self.index}: {type(exc).__name__}: {exc}")
            return
        self.outcomes.latencies_ms.append((time.perf_counter() - sent) * 1000)
        self.outcomes.counts["shown" if result.items else "superseded" if self.sent > number else "empty"] += 1

    def _fail(self, message: str) -> None:
        self.outcomes.counts["failed"] += 1
        self.outcomes.failures.append(message)


async def _leave(client: LanguageClient, outcomes: Outcomes | None = None, in_flight: set[asyncio.Future] = frozenset()) -> None:
    """shutdown, exit, then stop the client (a TCP client that skips exit waits forever); the
    requests in `in_flight` still unanswered when the answer to shutdown arrives are counted."""
    try:
        await asyncio.wait_for(client.shutdown_async(None), 30)
        await asyncio.sleep(0)  # answers read before shutdown's have resolved their futures
        if outcomes is not None:
            outcomes.unanswered_at_shutdown += sum(not request.done() for request in in_flight)
        client.exit(None)
    except Exception:  # the daemon may be gone already
        pass
    await client.stop()


def rss_windows(samples: list[tuple[float, int]], window_s: float) -> list[dict[str, float]]:
    """Minimum, median and maximum RSS (MB) of each window of samples (seconds since start, bytes).

    The minimum is what the daemon holds between generations: the figure a leak raises; the
    median and maximum also count the buffers of the generations in flight."""
    windows: dict[int, list[int]] = {}
    for seconds, rss in samples:
        windows.setdefault(int(seconds // window_s), []).append(rss)
    return [{"window": w + 1, "min_mb": round(min(v) / 2**20, 1), "median_mb": round(median(v) / 2**20, 1),
             "max_mb": round(max(v) / 2**20, 1)}
            for w, v in sorted(windows.items())]


async def load(port: int, pid: int, *, clients: int, seconds: float, window_s: float = 60.0, idle_s: float = 10.0,
               token: str | None = None, key_ms: tuple[float, float] = (60.0, 160.0), lines: int = 12, seed: int = 0,
               middle: bool = False, abrupt: bool = False, pause_chance: float = 0.0, hover_chance: float = 0.0) -> dict[str, Any]:
    """Type with `clients` editors into the daemon at `port` (process `pid`) for `seconds`; the
    figures, with RSS by window of `window_s` seconds (a minute for the soak) while they type,
    and once more after `idle_s` seconds of quiet (the server trims its heap when idle)."""
    outcomes = Outcomes()
    rss = RssSampler(pid, interval_s=0.5)
    started = time.monotonic()
    deadline = started + seconds
    try:
        await asyncio.gather(*(Typist(i, port, deadline, outcomes, token=token, key_ms=key_ms, lines=lines, seed=seed,
                                      middle=middle, abrupt=abrupt, pause_chance=pause_chance,
                                      hover_chance=hover_chance).run()
                               for i in range(clients)))
        typing_s = time.monotonic() - started
        await asyncio.sleep(idle_s)
    finally:
        rss.stop()
    typing = [(t, b) for t, b in rss.samples if t <= typing_s]
    windows = rss_windows(typing, window_s)
    full = [w for w in windows if w["window"] <= typing_s // window_s] or windows  # a last, partial window left out
    first, last = full[0]["median_mb"], full[-1]["median_mb"]
    floor_first, floor_last = full[0]["min_mb"], full[-1]["min_mb"]
    return {
        "clients": clients, "seconds": round(typing_s, 1), **outcomes.figures(),
        "rss_start_mb": round(typing[0][1] / 2**20, 1), "rss_peak_mb": round(max(b for _, b in typing) / 2**20, 1),
        "rss_window_s": window_s, "rss_by_window": windows, "rss_growth_first_to_last_full_window": round((last - first) / first, 4),
        "rss_floor_growth_first_to_last_full_window": round((floor_last - floor_first) / floor_first, 4),
        # the first window's floor is the model just loaded, before any request's buffers: a warm-up, not growth
        "rss_floor_growth_second_to_last_full_window":
            round((floor_last - full[1]["min_mb"]) / full[1]["min_mb"], 4) if len(full) >= 3 else None,
        "rss_after_idle_mb": round(rss.samples[-1][1] / 2**20, 1),
    }


async def start_daemon(args: list[str], env: dict[str, str]) -> tuple[asyncio.subprocess.Process, int]:
    """`python -m lsp_server --tcp --port 0 ARGS`; returns it and its port once it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lsp_server", "--tcp", "--port", "0", *args, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 600)).decode()
        if not line:
            raise RuntimeError("the daemon exited before listening")
        match = re.search(r"listening on [^:]+:(\d+)", line)
        if match:
            asyncio.ensure_future(_drain(process.stderr))
            return process, int(match.group(1))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def wait_until_ready(port: int, timeout: float = 600) -> None:
    """Wait for the daemon's model: a client asks codet5.status until it says ready (or error)."""
    client = _Client()
    await client.start_tcp("127.0.0.1", port)
    try:
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
        deadline = time.monotonic() + timeout
        while True:
            status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))
            if status["state"] == "error":
                raise RuntimeError(f"the daemon's model did not load: {status['message']}")
            if status["state"] == "ready" or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)
    finally:
        await _leave(client)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    daemon_args = ["--model", args.model, "--offline", *(["--threads", str(args.threads)] if args.threads else [])]
    process, port = await start_daemon(daemon_args, dict(os.environ))
    try:
        await wait_until_ready(port)
        figures = await load(port, process.pid, clients=args.clients, seconds=args.minutes * 60, seed=args.seed,
                             middle=args.middle, abrupt=args.abrupt, pause_chance=args.pause_chance,
                             hover_chance=args.hover_chance)
    finally:
        process.terminate()
        await process.wait()
    return {"command": "python -m bench.soak " + " ".join(sys.argv[1:]), "daemon": daemon_args,
            "cache": os.environ.get("CODET5_LSP_CACHE", "(default)"), **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=0, help="daemon's CPU threads per generation (0: its default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--middle", action="store_true", help="open whole files and type in their middle")
    parser.add_argument("--pause-chance", type=float, default=0.0, help="chance of a 0.5-3 s pause after a key")
    parser.add_argument("--hover-chance", type=float, default=0.0, help="chance that a pause starts with a hover")
    parser.add_argument("--abrupt", action="store_true", help="shut down with requests in flight (count the unanswered)")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)
    machine = machine_info()
    with LoadSampler() as load_average:
        result = asyncio.run(soak(args))
    result.update(machine=machine, load=load_average.summary())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "rss_by_window")}, indent=1))
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0 if result["failed"] == 0 and result["unanswered_at_shutdown"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
