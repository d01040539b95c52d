"""Hostile documents (issue 17, items 10 and 15): megabyte-long lines, documents past the size
limit, reversed change ranges. The work an edit costs is counted (characters looked at, pygls's
per-character conversions called), never timed."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace import PositionCodec

from lsp_server import documents
from lsp_server.documents import LineIndex, LspTextDocument
from lsp_server.model_host import ModelHost
from lsp_server.positions import cursor
from lsp_server.server import create_server
from lsp_server.session import MAX_DOCUMENT_CHARS
from tests.reliability.test_document_sync import PIECES, PipeServer, apply, lsp_lines, offset_of, position_of, server_text

HUGE = 5_000_000


def change(start: tuple[int, int], end: tuple[int, int], text: str) -> types.TextDocumentContentChangePartial:
    return types.TextDocumentContentChangePartial(range=types.Range(
        start=types.Position(line=start[0], character=start[1]), end=types.Position(line=end[0], character=end[1])), text=text)


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """The lengths of the texts the documents scan (every scan goes through code_points), and
    a failure if pygls's character-by-character conversions are called at all."""
    scanned: list[int] = []
    real = documents.code_points

    def counting(text: str) -> np.ndarray:
        scanned.append(len(text))
        return real(text)

    def forbidden(*args, **kwargs):
        raise AssertionError("pygls's per-character position conversion was called")

    monkeypatch.setattr(documents, "code_points", counting)
    for name in ("position_from_client_units", "position_to_client_units", "client_num_units"):
        monkeypatch.setattr(PositionCodec, name, forbidden)
    return scanned


@pytest.mark.parametrize("line", ["a" * HUGE, "é😀" * (HUGE // 2)])
def test_an_edit_to_a_huge_single_line_looks_only_at_the_edit(counted, line):
    document = LspTextDocument("file:///min.js", line + "\n")
    document.index  # built once, at the first use after opening
    counted.clear()
    units = document.index.units(0, len(line))
    for offset in (0, 1, len(line) // 2, len(line) - 1, len(line)):
        character = document.position_at(offset).character
        document.apply_change(change((0, character), (0, character), "xy"))
        assert document.source[offset : offset + 2] == "xy"
        document.apply_change(change((0, character), (0, character + 2), ""))  # and back
    assert document.source == line + "\n"
    document.apply_change(change((0, units + 50), (0, units + 99), "!"))  # past the end of the line: at its end
    assert document.source == line + "!\n"
    assert sum(counted) <= 11 * 2 * (2 + 2)  # each edit scanned its own text (twice) and the characters beside it
    counted.clear()
    middle = document.position_at(len(line) // 2)
    assert cursor(document, middle) == (len(line) // 2, middle)
    assert document.position_at(len(line)) == types.Position(line=0, character=units)
    assert not counted


def test_an_edit_in_a_file_of_many_lines_looks_only_at_the_edit(counted):
    text = "def f(x):\n    return x + 1\r\n" * 100_000
    document = LspTextDocument("file:///big.py", text)
    document.index
    counted.clear()
    document.apply_change(change((150_001, 4), (150_001, 10), "yield\n"))
    expected = apply(text, types.Position(line=150_001, character=4), types.Position(line=150_001, character=10), "yield\n")
    assert document.source == expected and sum(counted) <= 2 * (len("yield\n") + 2)
    assert document.line_count == 200_001


ENCODINGS = [types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf8, types.PositionEncodingKind.Utf32]
texts = st.lists(st.sampled_from(PIECES), max_size=20).map("".join)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(texts, st.lists(st.tuples(st.integers(0, 400), st.integers(0, 400), texts), min_size=1, max_size=6),
       st.sampled_from(ENCODINGS))
def test_the_index_updated_edit_by_edit_equals_the_index_built_from_scratch(text, edits, encoding):
    text = documents.encodable(text)
    index = LineIndex.build(text, encoding)
    for a, b, new in edits:
        a, b = sorted((a % (len(text) + 1), b % (len(text) + 1)))
        new = documents.encodable(new)
        text = text[:a] + new + text[b:]
        index = index.edited(text, a, b, len(new))
        fresh = LineIndex.build(text, encoding)
        for name in ("starts", "wide", "extra", "cumulative"):
            assert getattr(index, name).tolist() == getattr(fresh, name).tolist(), name


@settings(max_examples=200, deadline=None, derandomize=True)
@given(texts, st.integers(0, 30), st.integers(0, 30))
def test_positions_convert_as_the_reference_model_says(text, line, character):
    text = documents.encodable(text)
    document = LspTextDocument("file:///x.py", text)
    assert document.line_count == len(lsp_lines(text))
    offset = document.offset_at(types.Position(line=line, character=character))
    assert offset == offset_of(text, line, character)
    assert document.position_at(offset) == position_of(text, offset)


# -- through the server: the real server object fed JSON-RPC over pipes ----------------------------
@pytest.fixture(scope="module")
def pipe_server():
    served = PipeServer(create_server(ModelHost()))
    served.request("initialize", {"capabilities": {}})
    yield served
    served.close()


def _range(start: types.Position, end: types.Position) -> dict:
    return {"start": {"line": start.line, "character": start.character}, "end": {"line": end.line, "character": end.character}}


@pytest.mark.parametrize("text", ["ab\ncd😀ef\r\ngh", "x" * 50])
def test_a_reversed_range_is_applied_from_its_earlier_end_to_its_later_one(pipe_server, text):
    """Before, a range whose start came after its end dropped the inserted text silently."""
    uri = f"file:///hostile/reversed{len(text)}.py"
    pipe_server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})
    start, end = position_of(text, len(text) - 2), position_of(text, 1)
    pipe_server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                                  "contentChanges": [{"range": _range(start, end), "text": "NEW"}]})
    assert server_text(pipe_server, uri) == text[:1] + "NEW" + text[-2:]


def test_a_document_past_the_size_limit_still_syncs_and_gets_no_model_work(pipe_server):
    rng = random.Random(17)
    text = "".join(rng.choice("abc(){};=é😀") for _ in range(MAX_DOCUMENT_CHARS + 1000)) + "\nfunction f() {\n  return 1;\n}\n"
    uri = "file:///hostile/huge.js"
    pipe_server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "javascript", "version": 1, "text": text}})
    for version in range(2, 40):
        a, b = sorted(rng.randrange(len(text) + 1) for _ in range(2))
        b = min(b, a + rng.choice([0, 1, 5, 100]))
        new = rng.choice(["", "x", "\n", "\r\n", "😀", "é\nz"])
        start, end = position_of(text, a), position_of(text, b)
        if rng.random() < 0.3:
            start, end = end, start  # reversed: applied all the same
        text = text[:a] + new + text[b:]
        pipe_server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                      "contentChanges": [{"range": _range(start, end), "text": new}]})
    assert server_text(pipe_server, uri) == text
    where = {"line": 1, "character": 10}
    completion = pipe_server.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": where})
    assert completion["result"]["items"] == []
    hover = pipe_server.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": where})
    assert "error" not in hover and hover["result"] is None
    actions = pipe_server.request("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": {"start": where, "end": where},
                                                              "context": {"diagnostics": []}})
    assert actions["result"] == []


def test_long_lines_are_cut_for_the_model_around_the_cursor():
    from inference.completion.lines import MAX_LINE_CHARS, clip_long_lines

    long = "y" * (3 * MAX_LINE_CHARS)
    lines = ["a = 1\n", long + "\n", "b = 2\r\n", long]
    text, character = clip_long_lines(lines, 3, 2 * MAX_LINE_CHARS)
    clipped = lsp_lines(text)
    assert len(clipped) == 4 and clipped[0] == "a = 1\n" and clipped[2] == "b = 2\r\n"
    assert clipped[1] == "y" * MAX_LINE_CHARS + "\n" and len(clipped[3]) == MAX_LINE_CHARS
    assert clipped[3][:character] == "y" * character and character == MAX_LINE_CHARS * 3 // 4  # the cursor keeps its place
    assert clip_long_lines(["x = 1\n"], 0, 3) == ("x = 1\n", 3)


async def test_completion_after_a_megabyte_line_still_works(tmp_path, tiny_models):
    from tests.lsp_harness import end_of, inline, open_document, stdio_client

    text = "var a=" + "1+" * 600_000 + "1;\ndef add(a, b):\n    return"
    async with stdio_client(tmp_path, {"model": str(tiny_models.llama_int8), "threads": 1}) as (client, _):
        open_document(client, "file:///hostile/minified.py", text)
        result = await inline(client, "file:///hostile/minified.py", end_of(text))
        assert [item.insert_text for item in result.items] == [" a + b"]
        inside = await inline(client, "file:///hostile/minified.py", types.Position(line=0, character=700_000))
        assert len(inside.items) <= 1  # an answer, not an error
