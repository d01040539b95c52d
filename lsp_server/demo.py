"""`codet5-lsp demo`: start the server like an editor would and show a few live completions."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

DEMO_SOURCE = '''import os


def list_python_files(directory):
    """Return the paths of the .py files under directory."""
    result = []
    for root, dirs, files in os.walk(directory):
        for name in files:
            if name.endswith(".py"):
                result.append(os.path.join(root, name))
    return result


def fibonacci(n):
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n
    return fibonacci(n - 1) + fibonacci(n - 2)


def read_lines(path):
    with open(path) as handle:
        return handle.read().splitlines()
'''

# (line, text of that line up to the cursor): the demo cuts the file there and asks for the rest.
CURSORS = [
    (6, "    for root, dirs, files in os."),
    (9, "                result.append("),
    (17, "    return fib"),
    (21, "    with open(path) as handle:\n        return "),
]


def _document_until(line: int, typed: str) -> tuple[str, types.Position]:
    lines = DEMO_SOURCE.split("\n")[:line] + [typed]
    text = "\n".join(lines)
    last = text.split("\n")
    return text, types.Position(line=len(last) - 1, character=len(last[-1]))


async def _hover_summary(client: LanguageClient, uri: str, version: int) -> None:
    """The whole file, then a hover on `read_lines` (no docstring): the summary the model writes."""
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=DEMO_SOURCE)]))
    line = DEMO_SOURCE.split("\n").index("def read_lines(path):")
    started = time.perf_counter()
    try:
        hover = await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=5)))
    except Exception as exc:  # a missing summary model is reported, not fatal to the demo
        print(f"\nhover on read_lines: {exc}")
        return
    elapsed = (time.perf_counter() - started) * 1000
    summary = hover.contents.value.split("```\n\n", 1)[-1] if hover else "(no summary)"
    print(f"\nhover on read_lines: {summary}\n  ({elapsed:.0f} ms, the first summary: includes loading a separate summary model if one is set)")


async def _last_reason(client: LanguageClient) -> str:
    """Why the server's last answer was empty, from `codet5.status`."""
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))
    recent = status["noSuggestion"]["recent"] if isinstance(status, dict) else []
    return recent[-1]["message"] if recent else "no reason recorded"


async def run_demo(server_args: list[str]) -> int:
    client = LanguageClient("codet5-lsp-demo", "0")
    statuses: list[str] = []

    @client.feature("codet5/status")
    def on_status(params: object) -> None:
        field = params.get if isinstance(params, dict) else lambda name: getattr(params, name, "")
        message = field("message")
        if message and field("state") != "error" and (not statuses or statuses[-1] != message):
            statuses.append(message)
            print(f"  [server] {message}", file=sys.stderr, flush=True)

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def on_message(params: types.ShowMessageParams) -> None:
        if params.type != types.MessageType.Error:  # errors end the demo with one line of their own
            print(f"  [server] {params.message}", file=sys.stderr, flush=True)

    @client.feature("codet5/noSuggestion")
    def on_no_suggestion(params: object) -> None:
        pass  # an empty answer's reason is read from codet5.status, in order with the answer

    # Isolated (-I) and from the temporary directory: nothing in the user's directory is imported.
    await client.start_io(sys.executable, "-I", "-m", "lsp_server", *_absolute_paths(server_args), cwd=tempfile.gettempdir())
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    client.initialized(types.InitializedParams())
    uri = Path("demo.py").absolute().as_uri()
    version = 0
    print(f"Typing {len(CURSORS)} lines of a small Python file (demo.py, in memory) into the server and asking for a "
          "completion after each: each line below is what was typed, \u2502 marks the cursor, and what follows it "
          "is the server's suggestion.")
    try:
        for line, typed in CURSORS:
            text, position = _document_until(line, typed)
            version += 1
            if version == 1:
                client.text_document_did_open(types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)))
            else:
                client.text_document_did_change(types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
            started = time.perf_counter()
            try:
                result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri), position=position,
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
            except JsonRpcException as exc:  # the model failed to load: the server says why
                print(f"codet5-lsp: {exc}", file=sys.stderr, flush=True)
                return 1
            elapsed = (time.perf_counter() - started) * 1000
            suggestion = result.items[0].insert_text if result and result.items else f"(no suggestion: {await _last_reason(client)})"
            shown = text.split("\n")[-1]
            print(f"\n{shown}\u2502{suggestion}\n  ({elapsed:.0f} ms{', includes model load' if version == 1 else ''})")
        await _hover_summary(client, uri, version + 1)
    finally:
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    return 0


def _absolute_paths(args: list[str]) -> list[str]:
    """`args` with the model options that name an existing relative path made absolute (the server runs elsewhere)."""
    return [str(Path(arg).absolute()) if previous in ("--model", "--summary-model") and arg and Path(arg).exists() else arg
            for previous, arg in zip(["", *args], args)]


def main(server_args: list[str]) -> int:
    return asyncio.run(run_demo(server_args))
