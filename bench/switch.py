"""The first suggestion after switching to a file, with the server's `prewarm` on and off, paired.

Two servers over stdio (`python -m lsp_server`, real LSP clients), one per variant, alive side by
side and taking turns (the order alternates per file). For each of a seeded sample of standard-library
modules an editor's visit is replayed: the file opens (the one opened `--keep-open` visits before
closes: with 0, the previous one, so no other file is open; with more, the last ones stay open as
tabs and their chunks go in front of the prompt, `otherFiles`), the cursor rests at
the end of a random code line (a `codet5/cursor` notification, as the VS Code and Neovim clients send
it), the user reads for `--read-ms`, then presses Enter (a didChange inserting the line break and the
next line's indentation) and the editor asks for an inline suggestion (trigger kind Automatic, so
the server's debounce applies). Measured per visit: the time from that request to its answer, and
the suggestion. Reported per variant: median, p95, the median of per-file ratios to the reference
with a bootstrap interval, and how often both variants gave the same suggestion (prewarm must not
change it: a prompt's rows are quantized one by one, so a pass split in chunks computes the same up
to rounding).

With `--typists N` the variants run on two daemons instead (`python -m lsp_server --tcp`, one per
variant, over TCP), and while a variant's editor visits its files N other editors type on its
daemon without a pause, each waiting for the answer to every key (bench.daemon_load's closed loop;
with `--paced`, at a person's pace instead, asking at every key and pausing before each Enter).
The files are visited in `--rounds` runs of consecutive files, the variants' order alternating per
run, and only one daemon works at a time. Reported besides: the typists' answers per second and
latency (p50, p95) beside each variant: what one editor's prewarm costs the others on a shared daemon
(paced: the latency of their requests before a pause, what they wait for).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

from .daemon_load import Editor as Typist
from .machine import load_average, machine_info
from .replay import _Client
from .soak import start_daemon, wait_until_ready
from .stats import bootstrap_interval, median, p95

STDLIB = Path(sysconfig.get_paths()["stdlib"])
VARIANTS: dict[str, dict[str, Any]] = {"prewarm": {}, "no-prewarm": {"prewarm": False}}


def visits(count: int, seed: int) -> list[tuple[Path, int]]:
    """`count` (module, 0-based line) pairs: a line of code with a code line after it, 20 or more lines in."""
    rng = random.Random(seed)
    files = [p for p in sorted(STDLIB.glob("*.py")) if not p.name.startswith(("test", "_"))]
    rng.shuffle(files)
    chosen: list[tuple[Path, int]] = []
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if len(lines) < 60:
            continue
        candidates = [i for i in range(20, len(lines) - 1)
                      if lines[i].strip() and lines[i + 1].strip() and not lines[i].lstrip().startswith("#")]
        if candidates:
            chosen.append((path, rng.choice(candidates)))
        if len(chosen) == count:
            break
    return chosen


class Editor:
    """One server with its client, visiting files one at a time: its own over stdio, or a daemon's
    session when `port` is given."""

    def __init__(self, name: str, settings: dict[str, Any], keep_open: int = 0, port: int | None = None) -> None:
        self.name = name
        self.settings = settings
        self.keep_open = keep_open
        self.port = port
        self.client = _Client()
        self.opened: list[str] = []  # uris open, oldest first

    async def start(self, options: dict[str, Any]) -> None:
        if self.port is None:
            await self.client.start_io(sys.executable, "-m", "lsp_server", "--offline")
        else:
            await self.client.start_tcp("127.0.0.1", self.port)
        await self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), initialization_options={**options, **self.settings}))
        self.client.initialized(types.InitializedParams())
        await asyncio.wait_for(self.client.ready.wait(), 600)
        if self.client.state != "ready":
            raise RuntimeError(f"{self.name}: the server's model did not load")

    async def visit(self, path: Path, line: int, read_ms: float) -> tuple[float, str]:
        """Open `path`, rest the cursor at the end of `line`, read, press Enter, ask: (ms to the answer, suggestion)."""
        client = self.client
        while len(self.opened) > self.keep_open:
            client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=self.opened.pop(0))))
        text = path.read_text(encoding="utf-8", errors="replace")
        uri = path.resolve().as_uri()
        self.opened.append(uri)
        client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        lines = text.splitlines(keepends=True)
        end = types.Position(line, len(lines[line].rstrip("\r\n").encode("utf-16-le")) // 2)
        client.protocol.notify("codet5/cursor", {"textDocument": {"uri": uri}, "position": {"line": end.line, "character": end.character}})
        await asyncio.sleep(read_ms / 1000)
        following = lines[line + 1]
        indent = following[: len(following) - len(following.lstrip(" \t"))]
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            [types.TextDocumentContentChangePartial(range=types.Range(end, end), text="\n" + indent)]))
        started = time.perf_counter()
        answer = await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line + 1, len(indent)),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
        ms = (time.perf_counter() - started) * 1000
        return ms, answer.items[0].insert_text if answer and answer.items else ""

    async def status(self) -> dict[str, Any]:
        return await self.client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 30)
            self.client.exit(None)
        except Exception:  # the server may be gone already; stop() reaps it
            pass
        await self.client.stop()


def _options(model: str, context_tokens: int) -> dict[str, Any]:
    """The editors' server settings, besides each variant's own."""
    return {"model": model, "contextTokens": context_tokens, "completionMode": "line", "localFilesOnly": True,
            "speculative": False}


async def measure(count: int, seed: int, read_ms: float, variants: list[str], model: str, context_tokens: int,
                  keep_open: int = 0) -> dict[str, Any]:
    options = _options(model, context_tokens)
    editors = [Editor(name, VARIANTS[name], keep_open) for name in variants]
    for editor in editors:
        await editor.start(options)
    times: dict[str, list[float]] = {name: [] for name in variants}
    texts: dict[str, list[str]] = {name: [] for name in variants}
    loads: list[float] = []
    chosen = visits(count, seed)
    try:
        for number, (path, line) in enumerate(chosen):
            order = editors if number % 2 == 0 else editors[::-1]
            for editor in order:
                ms, text = await editor.visit(path, line, read_ms)
                times[editor.name].append(ms)
                texts[editor.name].append(text)
            loads.append((load_average() or (0.0,))[0])
            print(f"bench: {path.name}:{line + 1}: " + ", ".join(f"{n} {times[n][-1]:.0f} ms" for n in variants),
                  file=sys.stderr, flush=True)
        statuses = {editor.name: await editor.status() for editor in editors}
    finally:
        for editor in editors:
            await editor.stop()
    return {**_report(variants, chosen, times, texts, statuses, loads, seed), "read_ms": read_ms, "keep_open": keep_open}


async def measure_beside_typists(count: int, seed: int, read_ms: float, variants: list[str], model: str,
                                 context_tokens: int, typists: int, rounds: int, keep_open: int = 0,
                                 paced: bool = False) -> dict[str, Any]:
    """The visits of each variant on its own daemon while `typists` other editors type there (see
    the module's docstring)."""
    options = _options(model, context_tokens)
    daemons = [await start_daemon(["--model", model, "--offline"], dict(os.environ)) for _ in variants]
    times: dict[str, list[float]] = {name: [] for name in variants}
    texts: dict[str, list[str]] = {name: [] for name in variants}
    typing: dict[str, list[float]] = {name: [] for name in variants}
    typing_s: dict[str, float] = {name: 0.0 for name in variants}
    loads: list[float] = []
    chosen = visits(count, seed)
    size = -(-len(chosen) // rounds)
    runs = [chosen[i: i + size] for i in range(0, len(chosen), size)]
    editors: list[Editor] = []
    try:
        for _, port in daemons:
            await wait_until_ready(port)
        editors = [Editor(name, VARIANTS[name], keep_open, port) for name, (_, port) in zip(variants, daemons)]
        for editor in editors:
            await editor.start(options)
        for number, run in enumerate(runs):
            for editor in editors if number % 2 == 0 else editors[::-1]:
                assert editor.port is not None
                crowd = [Typist(i, editor.port, math.inf, seed * 100 + number, paced=paced) for i in range(typists)]
                started = time.monotonic()
                typed = [asyncio.ensure_future(t.run()) for t in crowd]
                for path, line in run:
                    ms, text = await editor.visit(path, line, read_ms)
                    times[editor.name].append(ms)
                    texts[editor.name].append(text)
                    loads.append((load_average() or (0.0,))[0])
                for typist in crowd:
                    typist.deadline = 0.0  # stops after its current key
                await asyncio.gather(*typed)
                typing[editor.name] += [ms for t in crowd for ms in t.latencies_ms]
                typing_s[editor.name] += time.monotonic() - started
                print(f"bench: run {number + 1}/{len(runs)} {editor.name}: visits p50 "
                      f"{median(times[editor.name][-len(run):]):.0f} ms, typists' answers p50 {median(typing[editor.name]):.0f} ms",
                      file=sys.stderr, flush=True)
        statuses = {editor.name: await editor.status() for editor in editors}
    finally:
        for editor in editors:
            await editor.stop()
        for process, _ in daemons:
            process.terminate()
            await process.wait()
    report = _report(variants, chosen, times, texts, statuses, loads, seed)
    for row in report["rows"]:
        answers = typing[row["variant"]]
        row["typists"] = {"editors": typists, "answers": len(answers), "answers_per_s": round(len(answers) / typing_s[row["variant"]], 2),
                          "p50_ms": round(median(answers), 1), "p95_ms": round(p95(answers), 1),
                          "p50_ci": [round(x, 1) for x in bootstrap_interval(answers, median)]}
    return {**report, "read_ms": read_ms, "keep_open": keep_open, "typists": typists, "paced": paced, "rounds": len(runs)}


def _report(variants: list[str], chosen: list[tuple[Path, int]], times: dict[str, list[float]], texts: dict[str, list[str]],
            statuses: dict[str, dict[str, Any]], loads: list[float], seed: int) -> dict[str, Any]:
    """Per variant: the visits' median and p95, per-file ratios to the last variant, same suggestions."""
    reference = variants[-1]
    rows = []
    for name in variants:
        ratios = [a / b for a, b in zip(times[name], times[reference]) if b > 0]
        rows.append({
            "variant": name, "settings": VARIANTS[name], "median_ms": round(median(times[name]), 1),
            "p95_ms": round(p95(times[name]), 1), "ratio_median": round(median(ratios), 3),
            "ratio_ci": [round(x, 3) for x in bootstrap_interval(ratios, median)],
            "same_suggestion": sum(a == b for a, b in zip(texts[name], texts[reference])), "visits": len(times[name]),
            "prompt_cache": statuses[name].get("promptCache"), "prewarms": statuses[name]["stages"].get("prewarm.prefill", 0),
        })
    return {"machine": machine_info(), "seed": seed, "reference": reference,
            "load_mean": round(sum(loads) / len(loads), 2), "load_max": round(max(loads), 2),
            "visits": [{"file": p.name, "line": n + 1, **{v: {"ms": round(times[v][i], 1), "suggestion": texts[v][i]}
                                                            for v in variants}} for i, (p, n) in enumerate(chosen)],
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.switch", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--read-ms", type=float, default=1500.0, help="how long the cursor rests before Enter")
    parser.add_argument("--variants", default="prewarm,no-prewarm", help="bench.switch.VARIANTS; the last is the reference")
    parser.add_argument("--keep-open", type=int, default=0, help="files visited before that stay open (other files' context)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--context-tokens", type=int, default=1024)
    parser.add_argument("--typists", type=int, default=0, help="editors typing on each variant's daemon meanwhile (0: no daemon)")
    parser.add_argument("--rounds", type=int, default=4, help="with --typists: runs of consecutive files, the order alternating")
    parser.add_argument("--paced", action="store_true", help="with --typists: they type at a person's pace (bench.daemon_load.Editor)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/switch-prewarm.json"))
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if args.typists:
        result = asyncio.run(measure_beside_typists(args.files, args.seed, args.read_ms, variants, args.model, args.context_tokens,
                                                    args.typists, args.rounds, args.keep_open, args.paced))
    else:
        result = asyncio.run(measure(args.files, args.seed, args.read_ms, variants, args.model, args.context_tokens, args.keep_open))
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["rows"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
