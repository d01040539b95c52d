"""A document's lines as LSP counts them, and lines cut to a length the model can take."""

from __future__ import annotations

import re

MAX_LINE_CHARS = 8192  # longer lines (minified code) are cut to this many characters for the model

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")  # str.splitlines breaks here, LSP does not


def split_lines(text: str) -> list[str]:
    """The lines of `text` with their line breaks, split at `\\n`, `\\r\\n` and `\\r` only."""
    return _LINE.findall(text) if _OTHER_BREAKS.search(text) else text.splitlines(keepends=True)


def clip_long_lines(lines: list[str], line: int, character: int) -> tuple[str, int]:
    """The text of `lines` with every line longer than MAX_LINE_CHARS cut to that length (the
    cursor's line around the cursor, others after their start), and the cursor's character in it.
    Keeps the line numbers, and the model's work bounded on megabyte-long lines."""
    clipped = []
    for number, text in enumerate(lines):
        body = text.rstrip("\r\n")
        if len(body) <= MAX_LINE_CHARS:
            clipped.append(text)
            continue
        start = max(0, min(character - MAX_LINE_CHARS * 3 // 4, len(body) - MAX_LINE_CHARS)) if number == line else 0
        clipped.append(body[start : start + MAX_LINE_CHARS] + text[len(body):])
        if number == line:
            character -= start
    return "".join(clipped), character
