"""Stage: the completion ends before its first bracket or quote that does not fit the line."""

from __future__ import annotations

from ..request import CompletionRequestText
from ..scan import CLOSES, SINGLE_LINE_QUOTES, Token, scan

def _first_misfit(tokens: list[Token], start: int, end: int) -> tuple[int | None, bool]:
    """In the tokens of context + completion + line suffix: the first closing bracket of the
    completion that closes nothing (or the wrong kind), or quote of a one-line string it leaves
    open; and whether the suffix has a closing bracket or a quote left without a partner."""
    opened: list[str] = []
    suffix_broken = False
    for tok in tokens:
        if tok.kind == "open":
            opened.append(tok.char)
        elif tok.kind == "close":
            if opened and opened[-1] == CLOSES[tok.char]:
                opened.pop()
            elif start <= tok.pos < end:
                return tok.pos, False
            else:
                suffix_broken |= tok.pos >= end
        elif tok.kind == "unclosed" and tok.char in SINGLE_LINE_QUOTES:
            if start <= tok.pos < end:
                return tok.pos, False
            suffix_broken |= tok.pos >= end
    return None, suffix_broken


def _suffix_needs(context: str, suffix: str) -> tuple[int, bool]:
    """How many brackets open before the cursor the line suffix closes, and whether it closes
    a string open at the cursor (scanned without the completion)."""
    start = len(context)
    opened: list[tuple[str, int]] = []
    needed, closes_string = 0, False
    for tok in scan(context + suffix):
        if tok.kind == "open":
            opened.append((tok.char, tok.pos))
        elif tok.kind == "close" and opened and opened[-1][0] == CLOSES[tok.char]:
            needed += tok.pos >= start and opened[-1][1] < start
            opened.pop()
        elif tok.kind == "string" and tok.pos < start <= tok.end:
            closes_string = True
    return needed, closes_string


def _taken_from_suffix(tokens: list[Token], start: int, end: int, context: str, suffix: str) -> int | None:
    """The first bracket or quote of the completion that closes what the line suffix closes."""
    needed, suffix_closes_string = _suffix_needs(context, suffix)
    opened: list[tuple[str, bool]] = []  # (bracket, opened by the completion)
    spare = -1  # brackets of the context that the completion may close
    for tok in tokens:
        if tok.pos >= end:
            break
        if tok.kind == "string" and tok.pos < start <= tok.end < end and suffix_closes_string:
            return tok.end
        if tok.kind not in ("open", "close"):
            continue
        if tok.pos >= start and spare < 0:
            spare = max(0, len(opened) - needed)
        if tok.kind == "open":
            opened.append((tok.char, tok.pos >= start))
        elif opened and opened[-1][0] == CLOSES[tok.char]:
            if tok.pos >= start and not opened[-1][1]:
                if spare == 0:
                    return tok.pos
                spare -= 1
            opened.pop()
    return None


def balance_brackets(completion: str, request: CompletionRequestText) -> str:
    """Cut the completion at its first bracket or quote that does not fit the line.

    That is a closing bracket that closes nothing opened in the previous lines, the line
    prefix or the completion (or closes the wrong kind); a one-line string the completion
    opens and leaves open; and, when the line suffix is left with a bracket or quote that
    closes nothing, the completion's bracket or quote that took its partner. Nothing is added.
    """
    context = request.text_before()
    start, end = len(context), len(context) + len(completion)
    tokens = scan(context + completion + request.line_suffix)
    cut, suffix_broken = _first_misfit(tokens, start, end)
    if cut is None and suffix_broken:
        cut = _taken_from_suffix(tokens, start, end, context, request.line_suffix)
    return completion if cut is None else completion[: cut - start]
