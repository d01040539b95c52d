"""LSP positions <-> the engine's (line, Python character) cursor, and a suggestion as a completion item."""

from __future__ import annotations

import re

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from .documents import LspTextDocument

MAX_WORD_CHARS = 256  # the most of the word before the cursor a completion item repeats
_WORD_BEFORE = re.compile(r"\w*\Z")


def cursor(document: LspTextDocument, position: types.Position) -> tuple[int, types.Position]:
    """(character index in the line's Python string, the position clamped to the line's end).

    LSP: a character past the end of its line means the end of the line. A line past the end
    of the document is an error. Costs no more on a long line than on a short one.
    """
    count = document.line_count
    if position.line < 0 or position.character < 0 or position.line > count or (
        position.line == count and position.character > 0
    ):
        raise JsonRpcInvalidParams(f"position {position.line}:{position.character} is outside the document ({count} lines)")
    if position.line == count:  # the empty line after a final newline
        return 0, position
    start, end = document.line_span(position.line)
    clamped = types.Position(line=position.line, character=min(position.character, document.index.units(start, end)))
    return document.offset_at(clamped) - start, clamped


def completion_item(document: LspTextDocument, position: types.Position, text: str) -> types.CompletionItem:
    """A completion item that inserts the suggestion, matched against the word being typed.

    Clients filter items by the word before the cursor, so the edit starts at that word and
    repeats it (at most MAX_WORD_CHARS of it), and the label is the suggestion's first line.
    """
    character, position = cursor(document, position)
    line_start = document.line_span(position.line)[0]
    offset = line_start + character
    word = _WORD_BEFORE.search(document.source, max(line_start, offset - MAX_WORD_CHARS), offset).group(0)
    start = document.position_at(offset - len(word))
    return types.CompletionItem(
        label=(word + text).split("\n", 1)[0].strip() or (word + text).strip(),
        kind=types.CompletionItemKind.Text,
        detail="codet5-lsp",
        filter_text=word + text,
        text_edit=types.TextEdit(range=types.Range(start=start, end=position), new_text=word + text),
        insert_text_format=types.InsertTextFormat.PlainText,
    )
