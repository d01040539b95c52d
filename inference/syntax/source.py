"""A document's text with conversions between LSP positions and tree-sitter byte offsets.

Positions are 0-based (line, character) with characters counted in Python ``str`` indices
(code points). Lines break at ``\\n``, ``\\r\\n`` and ``\\r`` as in LSP; tree-sitter counts rows
at ``\\n`` only, so everything here goes through byte offsets rather than tree-sitter rows.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _utf8_width(char: str) -> int:
    code = ord(char)
    if code < 0x80:
        return 1
    if code < 0x800:
        return 2
    return 3 if code < 0x10000 else 4


def indent_width(whitespace: str) -> int:
    """Column width of leading whitespace, tabs counted to the next multiple of 8."""
    return len(whitespace.expandtabs(8))


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


class Source:
    """Text plus its UTF-8 bytes, line table and code point <-> byte offset maps."""

    def __init__(self, text: str) -> None:
        self.text = text
        # surrogatepass keeps lone surrogates (possible in JSON text) at 3 bytes, as _utf8_width says.
        self.data = text.encode("utf-8", "surrogatepass")
        self.line_starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
        self.lines = _LINE_BREAK.split(text)
        wide = [(m.start(), _utf8_width(m.group())) for m in _NON_ASCII.finditer(text)]
        self._wide_chars = [index for index, _ in wide]
        self._wide_bytes: list[int] = []
        self._extra: list[int] = []
        extra = 0
        for index, width in wide:
            self._wide_bytes.append(index + extra)
            extra += width - 1
            self._extra.append(extra)

    @property
    def line_count(self) -> int:
        return len(self.lines)

    def offset(self, line: int, character: int) -> int:
        """Code point offset of a position, clamped to the document."""
        if line < 0:
            return 0
        if line >= len(self.lines):
            return len(self.text)
        return self.line_starts[line] + max(0, min(character, len(self.lines[line])))

    def char_to_byte(self, offset: int) -> int:
        k = bisect_left(self._wide_chars, offset)
        return offset + (self._extra[k - 1] if k else 0)

    def byte_to_char(self, byte: int) -> int:
        k = bisect_left(self._wide_bytes, byte)
        return byte - (self._extra[k - 1] if k else 0)

    def byte_at(self, line: int, character: int) -> int:
        return self.char_to_byte(self.offset(line, character))

    def position(self, byte: int) -> tuple[int, int]:
        """(line, character) of a byte offset."""
        offset = self.byte_to_char(byte)
        line = bisect_right(self.line_starts, offset) - 1
        return line, offset - self.line_starts[line]

    def line_of(self, byte: int) -> int:
        return self.position(byte)[0]

    def slice(self, start_byte: int, end_byte: int) -> str:
        return self.text[self.byte_to_char(start_byte) : self.byte_to_char(end_byte)]

    def indent_of_line(self, line: int) -> str:
        return leading_whitespace(self.lines[line]) if 0 <= line < len(self.lines) else ""


def indent_unit(src: Source, default: str, max_lines: int = 2000) -> str:
    """The file's indentation step: a tab, or the most common increase in leading spaces."""
    tabbed = spaced = 0
    steps: dict[int, int] = {}
    previous = 0
    for line in src.lines[:max_lines]:
        if not line.strip():
            continue
        whitespace = leading_whitespace(line)
        if whitespace.startswith("\t"):
            tabbed += 1
        elif whitespace:
            spaced += 1
        width = indent_width(whitespace)
        if width > previous and not whitespace.startswith("\t"):
            steps[width - previous] = steps.get(width - previous, 0) + 1
        previous = width
    if tabbed > spaced:
        return "\t"
    if steps:
        return " " * max(steps, key=lambda step: (steps[step], -step))
    return default
