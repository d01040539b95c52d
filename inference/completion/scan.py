"""A language-agnostic scanner: brackets, strings and comments of Python and the brace languages."""

from __future__ import annotations

from typing import NamedTuple

CLOSES = {")": "(", "]": "[", "}": "{"}
MULTILINE_QUOTES = ('"""', "'''", "`")  # Python triple quotes; JS templates and Go raw strings
SINGLE_LINE_QUOTES = ('"', "'")


class Token(NamedTuple):
    kind: str  # "open" / "close" (a bracket), "string", "unclosed" (a string left open), "comment"
    char: str  # the bracket, the quote delimiter, or the comment marker
    pos: int  # index of the bracket, or of the string's opening quote, or of the comment marker
    end: int  # index of the closing quote; where an unclosed string or a comment ends; else pos


def _is_lifetime(text: str, i: int) -> bool:
    """A Rust lifetime (``&'a``, ``<'a``), not a quote."""
    if i == 0 or text[i - 1] not in "&<" or i + 1 >= len(text) or not (text[i + 1].isalpha() or text[i + 1] == "_"):
        return False
    j = i + 1
    while j < len(text) and (text[j].isalnum() or text[j] == "_"):
        j += 1
    return text[j : j + 1] != "'"


def _comment_marker(text: str, i: int) -> str | None:
    """``#``, ``//`` or ``/*`` starting a comment at i: at a line start or after whitespace."""
    if i > 0 and text[i - 1] not in " \t\n":
        return None
    for marker in ("#", "//", "/*"):
        if text.startswith(marker, i):
            return marker
    return None


def _scan_string(text: str, start: int, tokens: list[Token]) -> int:
    """Record the string opening at `start`; return the index after it."""
    quote = text[start : start + 3] if text.startswith(('"""', "'''"), start) else text[start]
    i = start + len(quote)
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(quote, i):
            tokens.append(Token("string", quote, start, i))
            return i + len(quote)
        elif text[i] == "\n" and quote in SINGLE_LINE_QUOTES:
            tokens.append(Token("unclosed", quote, start, i))
            return i
        else:
            i += 1
    tokens.append(Token("unclosed", quote, start, len(text)))
    return len(text)


def scan(text: str) -> list[Token]:
    """Brackets outside strings and comments, strings, and comments, in text order."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "([{":
            tokens.append(Token("open", c, i, i))
            i += 1
        elif c in ")]}":
            tokens.append(Token("close", c, i, i))
            i += 1
        elif c in "\"'`" and not _is_lifetime(text, i):
            i = _scan_string(text, i, tokens)
        elif (marker := _comment_marker(text, i)) is not None:
            if marker == "/*":
                close = text.find("*/", i + 2)
                end = len(text) if close < 0 else close + 2
            else:
                newline = text.find("\n", i)
                end = len(text) if newline < 0 else newline
            tokens.append(Token("comment", marker, i, end))
            i = end
        else:
            i += 1
    return tokens


def imbalance(text: str) -> int:
    """Brackets that close nothing or are never closed, plus strings left open."""
    opened: list[str] = []
    bad = 0
    for tok in scan(text):
        if tok.kind == "open":
            opened.append(tok.char)
        elif tok.kind == "close":
            if opened and opened[-1] == CLOSES[tok.char]:
                opened.pop()
            else:
                bad += 1
        elif tok.kind == "unclosed":
            bad += 1
    return bad + len(opened)
