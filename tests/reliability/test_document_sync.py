"""Document sync: random incremental `didChange` sequences leave the server's text equal to the client's.

The client side is a reference text model written here from the LSP specification: lines end
at `\\n`, `\\r\\n` or `\\r` (nothing else), positions count UTF-16 code units, and a character
past the end of its line (or a line past the end of the document) means the end of it. The
server side is the real server object in this process, fed framed JSON-RPC through OS pipes
exactly as over stdio; its open document is read directly once a request has made sure every
earlier notification was applied. Reading it in-process keeps a test-only command out of the
server. One end-to-end test checks the same through a completion's effect on the real
subprocess.

`CODET5_SYNC_EXAMPLES` raises the number of generated edit sequences (default 120).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types

from lsp_server.model_host import ModelHost
from lsp_server.positions import cursor
from lsp_server.server import Codet5Server, create_server
from tests.lsp_harness import end_of, inline, open_document, start_daemon, stdio_client

EXAMPLES = int(os.environ.get("CODET5_SYNC_EXAMPLES", "120"))
PREFIX_DOCUMENT = "def add(a, b):\n    return"

# Pieces of text the generator strings together: multi-byte UTF-8, astral characters (UTF-16
# surrogate pairs), combining sequences, all three LSP line breaks and the characters that
# Python's str.splitlines also breaks at but LSP does not.
PIECES = [
    "a", "b", "x", "(", ")", " ", "    ", "\t", "é", "€", "漢", "😀", "𝔘", "e\u0301", "👩\u200d💻", "\u200b",
    "\n", "\n", "\r\n", "\r", "\x0c", "\x0b", "\x1c", "\x85", "\u2028", "\u2029", "\x00",
]
pieces_text = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
_LSP_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_BREAK = re.compile(r"(?:\r\n|\r|\n)\Z")


# -- the reference text model (the client's copy) -------------------------------------------
def lsp_lines(text: str) -> list[str]:
    """The document's lines with their line breaks, split as LSP says."""
    return _LSP_LINE.findall(text)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def offset_of(text: str, line: int, character: int) -> int:
    """Code point offset of an LSP position (UTF-16 units), clamped as LSP says."""
    lines = lsp_lines(text)
    if line >= len(lines):
        return len(text)
    start = sum(len(ln) for ln in lines[:line])
    content = _BREAK.sub("", lines[line])
    units = index = 0
    while index < len(content) and units < character:
        units += utf16_len(content[index])
        index += 1
    return start + index


def position_of(text: str, offset: int) -> types.Position:
    """The LSP position of a code point offset."""
    line_start = 0
    for number, line in enumerate(lsp_lines(text)):
        if offset < line_start + len(line) or (offset == line_start + len(line) and not _BREAK.search(line)):
            return types.Position(line=number, character=utf16_len(text[line_start:offset]))
        line_start += len(line)
    return types.Position(line=len(lsp_lines(text)), character=0)


def apply(text: str, start: types.Position, end: types.Position, new: str) -> str:
    a, b = offset_of(text, start.line, start.character), offset_of(text, end.line, end.character)
    return text[:a] + new + text[b:]


# -- the server, in process ------------------------------------------------------------------
class PipeServer:
    """The real server object fed framed JSON-RPC through OS pipes, as over stdio."""

    def __init__(self, server: Codet5Server) -> None:
        self.server = server
        to_server_r, to_server_w = os.pipe()
        from_server_r, from_server_w = os.pipe()
        self._to_server = os.fdopen(to_server_w, "wb")
        self._from_server = os.fdopen(from_server_r, "rb")
        self._thread = threading.Thread(
            target=server.start_io, args=(os.fdopen(to_server_r, "rb"), os.fdopen(from_server_w, "wb")), daemon=True
        )
        self._thread.start()
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next_id = 0
        self.notifications: list[dict[str, Any]] = []

    def _read(self) -> None:
        while True:
            length = None
            while True:
                line = self._from_server.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line == b"\r\n" and length is not None:
                    break
            self._messages.put(json.loads(self._from_server.read(length)))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self._to_server.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self._to_server.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = 60.0) -> dict[str, Any]:
        """The response to a request; notifications on the way are kept, server requests answered."""
        self._next_id += 1
        request_id = self._next_id
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message = self._messages.get(timeout=timeout)
            if "method" in message and "id" in message:
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" in message:
                self.notifications.append(message)
            elif message.get("id") == request_id:
                return message

    def close(self) -> None:
        self._to_server.close()  # end of input: the server's loop ends
        self._thread.join(30)


@pytest.fixture(scope="module")
def pipe_server():
    served = PipeServer(create_server(ModelHost()))
    served.request("initialize", {"capabilities": {}})
    yield served
    served.close()


def server_text(served: PipeServer, uri: str) -> str:
    """The server's text of `uri` once every earlier message has been handled."""
    served.request("workspace/executeCommand", {"command": "codet5.status"})  # handled in order: a barrier
    return served.server.workspace.get_text_document(uri).source


# -- edits -------------------------------------------------------------------------------------
Change = tuple[int, int, int, int, str] | str


@st.composite
def edit_sequences(draw: st.DrawFn) -> tuple[str, list[list[Change]]]:
    """An opening text and a list of didChange messages, each a list of changes: a whole new text,
    or (start offset, end offset, which ends point past their line, how far, new text)."""
    opening = draw(pieces_text)
    messages = []
    for _ in range(draw(st.integers(1, 8))):
        changes: list[Change] = []
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.integers(0, 19)) == 0:
                changes.append(draw(pieces_text))
            else:
                changes.append((draw(st.integers(0, 10_000)), draw(st.integers(0, 10_000)), draw(st.integers(0, 3)),
                                draw(st.sampled_from([1, 5, 1000])), draw(pieces_text)))
        messages.append(changes)
    return opening, messages


def _past(text: str, position: types.Position, far: int) -> types.Position:
    """The same place, written past the end of its line (or of the document) when it ends one."""
    offset = offset_of(text, position.line, position.character)
    if far == 1000 and offset == len(text):
        return types.Position(line=position.line + far, character=position.character + far)
    if offset == offset_of(text, position.line, 10**9):
        return types.Position(line=position.line, character=position.character + far)
    return position


def _change(text: str, spec: Change) -> tuple[str, dict[str, Any]]:
    """The client's text after one change, and the change as sent."""
    if isinstance(spec, str):
        return spec, {"text": spec}
    a, b, which, far, new = spec
    a, b = sorted((a % (len(text) + 1), b % (len(text) + 1)))
    start, end = position_of(text, a), position_of(text, b)
    if which & 1:
        start = _past(text, start, far)
    if which & 2:
        end = _past(text, end, far)
    change = {"range": {"start": {"line": start.line, "character": start.character},
                        "end": {"line": end.line, "character": end.character}}, "text": new}
    return apply(text, start, end, new), change


counter = iter(range(10**9))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(edit_sequences())
def test_random_incremental_edits_keep_server_and_client_text_identical(pipe_server, sequence):
    opening, messages = sequence
    uri = f"file:///sync/doc{next(counter)}.py"
    pipe_server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": opening}})
    text = opening
    for version, changes in enumerate(messages, start=2):
        sent = []
        for spec in changes:
            text, change = _change(text, spec)
            sent.append(change)
        pipe_server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": sent})
    assert server_text(pipe_server, uri) == text
    document = pipe_server.server.workspace.get_text_document(uri)
    assert list(document.lines) == lsp_lines(text)
    for offset in sorted({0, len(text) // 3, len(text) // 2, len(text)}):  # the server's cursor agrees too
        position = position_of(text, offset)
        if position.line < len(lsp_lines(text)) and offset_of(text, position.line, position.character) == offset:
            line_start = offset_of(text, position.line, 0)
            assert cursor(document, position)[0] == offset - line_start
    pipe_server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


def test_reference_model_follows_the_specification():
    """The reference model itself, on cases written out by hand."""
    text = "ab\r\ncd\x0cef\u2028g😀h\ri\n"
    assert lsp_lines(text) == ["ab\r\n", "cd\x0cef\u2028g😀h\r", "i\n"]
    assert offset_of(text, 1, 9) == text.index("h")  # 😀 counts 2 UTF-16 units
    assert offset_of(text, 0, 99) == 2  # past the end of a line: before its line break
    assert offset_of(text, 9, 0) == len(text)
    assert position_of(text, len(text)) == types.Position(line=3, character=0)
    assert apply("abc", types.Position(line=0, character=7), types.Position(line=0, character=9), "X") == "abcX"


@pytest.mark.parametrize(
    ("opening", "start", "end", "new", "expected"),
    [
        ("a\x0cb\nc", (1, 0), (1, 1), "X", "a\x0cb\nX"),  # form feed is no line break
        ("a\u2028b\nc", (1, 1), (1, 1), "Y", "a\u2028b\ncY"),  # nor is U+2028
        ("a\x85b\nc", (0, 3), (0, 3), "Z", "a\x85bZ\nc"),  # nor NEL
        ("abc", (0, 9), (0, 9), "!", "abc!"),  # past the end of the last line
        ("abc\ndef", (0, 4), (0, 4), "!", "abc!\ndef"),  # past the end of a line: before its break
        ("ab\r\ncd", (0, 3), (0, 3), "!", "ab!\r\ncd"),  # never between \r and \n
        ("x😀y", (0, 3), (0, 3), "|", "x😀|y"),  # after a surrogate pair
        ("e\u0301z", (0, 2), (0, 2), "|", "e\u0301|z"),  # combining mark: two code points
    ],
)
def test_edits_around_line_break_and_unicode_edge_cases(pipe_server, opening, start, end, new, expected):
    uri = f"file:///sync/case{next(counter)}.py"
    pipe_server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": opening}})
    pipe_server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}}, "text": new}]})
    assert server_text(pipe_server, uri) == expected
    assert apply(opening, types.Position(line=start[0], character=start[1]), types.Position(line=end[0], character=end[1]), new) == expected


def test_lone_surrogates_are_stored_as_replacement_characters_at_the_same_positions(pipe_server):
    """JSON can carry a lone surrogate, which no tokenizer can encode; the server keeps U+FFFD in its
    place (one code point, one UTF-16 unit), so every position still agrees with the client's."""
    uri = "file:///sync/surrogate.py"
    pipe_server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "a\ud800b\n"}})
    pipe_server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 0, "character": 2}, "end": {"line": 0, "character": 2}}, "text": "\udc00c"}]})
    assert server_text(pipe_server, uri) == "a\ufffd\ufffdcb\n"


async def test_completion_position_is_right_after_edits_in_a_document_with_form_feeds(tmp_path, tiny_models):
    """End to end, through a completion's effect: lines the client never split must not shift the cursor."""
    options = {"model": str(tiny_models.llama_int8), "threads": 1}
    head = "\x0c\n"  # one line for LSP, two for str.splitlines
    async with stdio_client(tmp_path, options) as (client, _):
        open_document(client, "file:///sync/ff.py", head + "def add(a, b):\n    ret\n\nx = 1\n")
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri="file:///sync/ff.py", version=2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=2, character=7), end=types.Position(line=2, character=7)), text="urn")],
        ))
        text = head + "def add(a, b):\n    return"
        result = await inline(client, "file:///sync/ff.py", end_of(text))
        assert [item.insert_text for item in result.items] == [" a + b"]


async def test_percent_encoded_uris_name_the_open_document(tmp_path, tiny_models):
    """Editors percent-encode spaces and non-ASCII characters in URIs (VS Code always does)."""
    options = {"model": str(tiny_models.llama_int8), "threads": 1}
    async with stdio_client(tmp_path, options) as (client, _):
        for uri in ("file:///my%20project/%C3%A9t%C3%A9.py", "file:///c%3A/Users/x/a.py"):
            open_document(client, uri, PREFIX_DOCUMENT)
            result = await inline(client, uri, end_of(PREFIX_DOCUMENT))
            assert [item.insert_text for item in result.items] == [" a + b"]


async def test_a_request_sees_its_document_as_it_was_sent_even_when_a_change_or_close_follows_at_once(tmp_path, tiny_models):
    """Over TCP the messages behind a request are often handled before its (async) handler starts;
    a completion sent just before didClose, or before a change that empties the document, must
    still complete the text it was sent for."""
    process, port = await start_daemon(tmp_path, "--model", str(tiny_models.llama_int8), "--threads", "1")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        def send(*messages: dict) -> None:
            for message in messages:
                body = json.dumps(message).encode()
                writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

        async def response(request_id: int) -> dict:
            while True:
                length = 0
                while (line := await asyncio.wait_for(reader.readline(), 60)) != b"\r\n":
                    length = int(line.split(b":")[1]) if line.lower().startswith(b"content-length:") else length
                message = json.loads(await reader.readexactly(length))
                if message.get("id") == request_id and "method" not in message:
                    return message

        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
             {"jsonrpc": "2.0", "method": "initialized", "params": {}})
        await response(1)
        for request_id, follower in enumerate([
            {"method": "textDocument/didClose", "params": {"textDocument": {"uri": "file:///x.py"}}},
            {"method": "textDocument/didChange", "params": {"textDocument": {"uri": "file:///x.py", "version": 2},
                                                            "contentChanges": [{"text": ""}]}},
        ], start=2):
            send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
                     "uri": "file:///x.py", "languageId": "python", "version": 1, "text": PREFIX_DOCUMENT}}},
                 {"jsonrpc": "2.0", "id": request_id, "method": "textDocument/inlineCompletion", "params": {
                     "textDocument": {"uri": "file:///x.py"}, "position": {"line": 1, "character": 10}, "context": {"triggerKind": 1}}},
                 {"jsonrpc": "2.0", **follower})
            answer = await response(request_id)
            assert [item["insertText"] for item in answer["result"]["items"]] == [" a + b"], answer
        writer.close()
    finally:
        process.terminate()
        await process.wait()
