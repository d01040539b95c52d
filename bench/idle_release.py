"""Memory an idle server gives back (issues 13 and 14): its RSS after completions and a hover, after
the idle releases, and after the next hover.

Starts `python -m lsp_server` (stdio) with a separate summary model and short idle periods, and
talks to it as an editor does: it asks inline completions at the end of two standard-library
excerpts (two cached prompts) and hovers a function name (the summary model summarizes it), then
only asks `codet5.status` until the cached prompts are released, then the summary model unloaded
(a longer idle period). Then it hovers another function (the summary model loads again) and asks
the same two completions in new documents (their texts must not change). The server's RSS
(psutil) is read after each step, and its log lines about the releases are kept.

`python -m bench.idle_release [--model default] [--summary-model smollm2-135m-summarizer] [--prompt-idle-s 10]
[--summary-idle-s 20]` (offline, `CODET5_LSP_CACHE` where the models are) writes
`bench/results/idle-release.json`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from lsprotocol import types

from .machine import LoadSampler, machine_info
from .soak import _Client, _leave

STDLIB = Path(sysconfig.get_paths()["stdlib"])
# (file, lines, characters of the next line): each ends inside a statement, where the model has code to write
EXCERPTS = [("textwrap.py", 252, 29), ("shutil.py", 301, 36)]
HOVERED_URI = "file:///undocumented.py"
UNDOCUMENTED = """\
def clamp(value, low, high):
    if value < low:
        return low
    if value > high:
        return high
    return value


def word_counts(text):
    counts = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts
"""  # functions without docstrings: a hover shows the summary model's summary
RESULTS = Path(__file__).resolve().parent / "results"
MB = 1 << 20


def _name_position(text: str, nth: int) -> types.Position:
    """Where to hover the `nth` function name defined at the top level of `text`."""
    match = list(re.finditer(r"^def (\w+)", text, re.MULTILINE))[nth]
    return types.Position(line=text.count("\n", 0, match.start(1)), character=len("def ") + 1)


def _end(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


class _Editor:
    """A client of the server, as an editor: it opens documents, asks completions and hovers."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.texts: dict[str, str] = {}

    def open(self, uri: str, text: str) -> None:
        self.texts[uri] = text
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))

    def open_excerpts(self, folder: str) -> list[str]:
        """Open the excerpts under file:///`folder`/ (a suggestion is cached per document); their uris."""
        uris = []
        for file, lines, characters in EXCERPTS:
            source = (STDLIB / file).read_text(encoding="utf-8").splitlines(keepends=True)
            uris.append(f"file:///{folder}/{file}")
            self.open(uris[-1], "".join(source[:lines]) + source[lines][:characters])
        return uris

    async def complete(self, uri: str) -> str:
        result = await self.client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=_end(self.texts[uri]),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        return result.items[0].insert_text if result and result.items else ""

    async def hover(self, uri: str, nth: int) -> tuple[str, float]:
        """The hover's text and how long it took (ms)."""
        sent = time.perf_counter()
        result = await self.client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=_name_position(self.texts[uri], nth)))
        return (result.contents.value if result else ""), round((time.perf_counter() - sent) * 1000, 1)

    async def status(self) -> dict[str, Any]:
        return await self.client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))

    async def wait(self, done: Callable[[dict[str, Any]], Any], limit_s: float) -> None:
        """Ask `codet5.status` every second until `done(status)` holds."""
        deadline = time.monotonic() + limit_s
        while not done(await self.status()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"still waiting after {limit_s:g} s")
            await asyncio.sleep(1.0)


class _Steps(list):
    """The server's RSS after each step, with its `codet5.status` counters."""

    def __init__(self, process: psutil.Process) -> None:
        super().__init__()
        self.process = process

    async def note(self, editor: _Editor, step: str, **extra: Any) -> None:
        await asyncio.sleep(1.0)  # the worker gives freed heap back once it is idle
        status = await editor.status()
        self.append({"step": step, "rss_mb": round(self.process.memory_info().rss / MB, 1),
                     "prompt_cache": status["promptCache"], "summary_model": status["summaryModel"], **extra})
        print(f"bench: {self[-1]}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, log_file: Path) -> dict[str, Any]:
    """Complete and hover, go quiet until both releases happened, then hover and complete again.

    Over stdio: a daemon's per-session time budget would cut completions at a load-dependent point."""
    server_args = ["--model", args.model, "--summary-model", args.summary_model, "--offline",
                   "--summary-idle-unload-s", str(args.summary_idle_s), "--prompt-cache-idle-release-s", str(args.prompt_idle_s),
                   "--log-file", str(log_file), *(["--threads", str(args.threads)] if args.threads else [])]
    client = _Client()
    await client.start_io(sys.executable, "-m", "lsp_server", *server_args)
    steps = _Steps(next(child for child in psutil.Process().children() if "lsp_server" in child.cmdline()))
    editor = _Editor(client)
    try:
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
        client.initialized(types.InitializedParams())
        await editor.wait(lambda status: status["state"] == "ready" and status["summaryModel"]["loaded"], 600)
        await steps.note(editor, "models loaded")
        before = [await editor.complete(uri) for uri in editor.open_excerpts("first")]
        editor.open(HOVERED_URI, UNDOCUMENTED)
        summary, hover_ms = await editor.hover(HOVERED_URI, 0)
        await steps.note(editor, "after 2 completions and a hover", hover_ms=hover_ms, summary=summary, texts=before)
        await editor.wait(lambda status: status["promptCache"]["released"], 2 * args.prompt_idle_s + 60)
        await steps.note(editor, "after the cached prompts were freed")
        await editor.wait(lambda status: status["summaryModel"]["idleUnloads"], 2 * args.summary_idle_s + 60)
        await steps.note(editor, "after the summary model was unloaded")
        summary, hover_ms = await editor.hover(HOVERED_URI, 1)
        await steps.note(editor, "after the next hover (summary model loaded again)", hover_ms=hover_ms, summary=summary)
        after = [await editor.complete(uri) for uri in editor.open_excerpts("again")]
        await steps.note(editor, "after the same 2 completions again", same_texts=after == before, texts=after)
    finally:
        await _leave(client)
    log_lines = [line for line in log_file.read_text(encoding="utf-8").splitlines()
                 if "unloaded the summary model" in line or "cached prompt" in line]
    return {"command": "python -m bench.idle_release " + " ".join(sys.argv[1:]), "server": server_args,
            "cache": os.environ.get("CODET5_LSP_CACHE", "(default)"), "steps": steps, "log": log_lines}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_release", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--summary-model", default="smollm2-135m-summarizer")
    parser.add_argument("--prompt-idle-s", type=int, default=10, help="the daemon's --prompt-cache-idle-release-s")
    parser.add_argument("--summary-idle-s", type=int, default=20, help="the daemon's --summary-idle-unload-s (longer: "
                        "the two releases are measured apart)")
    parser.add_argument("--threads", type=int, default=0, help="daemon's CPU threads per generation (0: its default)")
    parser.add_argument("--out", type=Path, default=RESULTS / "idle-release.json")
    args = parser.parse_args(argv)
    machine = machine_info()
    with tempfile.TemporaryDirectory() as folder, LoadSampler() as load_average:
        result = asyncio.run(run(args, Path(folder) / "daemon.log"))
    result.update(machine=machine, load=load_average.summary())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0 if result["steps"][-1]["same_texts"] and len(result["log"]) >= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
