"""Stop rule and clean-up of a model's raw completion, as small stages each testable alone.

Pure text: no model, no LSP types, every index a Python ``str`` index. The stages only ever
shorten the model's text or rewrite the whitespace at the start and end of its lines; they never
add a character the model did not write. When a rule is in doubt, the model's text is kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from .no_suggestion import NoSuggestion


@dataclass(frozen=True)
class CompletionRequestText:
    """The text around the cursor that the stop rule and the stages look at."""

    line_prefix: str  # text of the cursor's line before the cursor
    line_suffix: str = ""  # text of the cursor's line after the cursor
    prev_lines: list[str] = field(default_factory=list)  # a few lines before the cursor line, nearest last
    next_lines: list[str] = field(default_factory=list)  # a few lines after the cursor line, nearest first
    multiline: bool = False  # block completion allowed (else single line)
    indent: str = ""  # indentation of a new line at the cursor's block level


# ---------------------------------------------------------------------------------------------
# A language-agnostic scanner: brackets, strings and comments of Python and the brace languages.

_CLOSES = {")": "(", "]": "[", "}": "{"}
_MULTILINE_QUOTES = ('"""', "'''", "`")  # Python triple quotes; JS templates and Go raw strings
_SINGLE_LINE_QUOTES = ('"', "'")


class _Token(NamedTuple):
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


def _scan_string(text: str, start: int, tokens: list[_Token]) -> int:
    """Record the string opening at `start`; return the index after it."""
    quote = text[start : start + 3] if text.startswith(('"""', "'''"), start) else text[start]
    i = start + len(quote)
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(quote, i):
            tokens.append(_Token("string", quote, start, i))
            return i + len(quote)
        elif text[i] == "\n" and quote in _SINGLE_LINE_QUOTES:
            tokens.append(_Token("unclosed", quote, start, i))
            return i
        else:
            i += 1
    tokens.append(_Token("unclosed", quote, start, len(text)))
    return len(text)


def _scan(text: str) -> list[_Token]:
    """Brackets outside strings and comments, strings, and comments, in text order."""
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "([{":
            tokens.append(_Token("open", c, i, i))
            i += 1
        elif c in ")]}":
            tokens.append(_Token("close", c, i, i))
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
            tokens.append(_Token("comment", marker, i, end))
            i = end
        else:
            i += 1
    return tokens


def _imbalance(text: str) -> int:
    """Brackets that close nothing or are never closed, plus strings left open."""
    opened: list[str] = []
    bad = 0
    for tok in _scan(text):
        if tok.kind == "open":
            opened.append(tok.char)
        elif tok.kind == "close":
            if opened and opened[-1] == _CLOSES[tok.char]:
                opened.pop()
            else:
                bad += 1
        elif tok.kind == "unclosed":
            bad += 1
    return bad + len(opened)


# ---------------------------------------------------------------------------------------------
# Small text helpers.

_TAB_WIDTH = 4  # columns of a tab when comparing indentation


def _lead(line: str) -> str:
    """The line's indentation (spaces and tabs)."""
    return line[: len(line) - len(line.lstrip(" \t"))]


def _width(indentation: str, tab: int = _TAB_WIDTH) -> int:
    """Columns taken by spaces and tabs, a tab advancing to the next multiple of `tab`."""
    column = 0
    for ch in indentation:
        column = column + tab - column % tab if ch == "\t" else column + 1
    return column


def _context(request: CompletionRequestText) -> str:
    """The text before the cursor that the request shows: previous lines and the line prefix."""
    return "".join(line + "\n" for line in request.prev_lines) + request.line_prefix


def _full_lines(lines: list[str], request: CompletionRequestText) -> list[str]:
    """The completion's lines as they read in the file: the first one after the line prefix."""
    return [request.line_prefix + lines[0], *lines[1:]]


# ---------------------------------------------------------------------------------------------
# Stop rule.

# A line ending like this continues on the next one: a newline right after it is no completion.
_CONTINUES = re.compile(
    r"(?:[-+*/%=<&|^~!.@]|->|=>|\b(?:and|or|not|in|is|if|elif|while|for|import|from|as|with|lambda|await"
    r"|def|class|let|const|var|function|fn|func))\Z"
)
_ENDS_STATEMENT = re.compile(r"(?:\+\+|--|\*/|\.\.\.|\bimport \*)\Z")

# A line that starts a new definition (or its decorator/attribute) in Python or a brace language.
_DEFINITION = re.compile(
    r"@\w|#!?\["
    r"|(?:export|public|private|protected|internal|static|abstract|final|override|unsafe)\s+\w"
    r"|async\s+(?:def|function|fn)[\s*(]"
    r"|pub(?:\([\w:\s]*\))?\s+\w"
    r"|(?:def|class|function\*?|fn|fun|func|struct|enum|trait|interface|namespace|type|impl)\s+[\w(<{]"
    r"|impl<"
)
_DECORATOR = re.compile(r"@\w|#!?\[")
_COMMENT = re.compile(r"#(?!!?\[)|//|/\*|\*(?:/|\s|\Z)")


def _allows_leading_newline(request: CompletionRequestText) -> bool:
    """Whether the completion may start on the next line: the cursor ends a line whose code is
    complete (``def f():``, ``{``, ``x = 1``), not ``x =``, ``foo.`` or an open one-line string."""
    head = request.line_prefix.rstrip()
    if request.line_suffix.strip() or not head.strip():
        return False
    context = _context(request)
    tokens = _scan(context)
    last = tokens[-1] if tokens else None
    if last is not None and last.end == len(context):  # the cursor is inside a comment or string
        return last.kind == "comment" or last.char in _MULTILINE_QUOTES
    return bool(_ENDS_STATEMENT.search(head)) or not _CONTINUES.search(head)


def _on_blank_line(request: CompletionRequestText) -> bool:
    """A single-line completion on a line with nothing but indentation before and after the cursor."""
    return not request.multiline and not request.line_prefix.strip() and not request.line_suffix.strip()


def skip_leading_blank_lines(completion: str, request: CompletionRequestText) -> str:
    """On an empty line, drop the blank lines a single-line completion starts with, and the
    indentation the user already typed, so the code lands on the cursor's line."""
    if not _on_blank_line(request) or not completion.strip() or "\n" not in completion:
        return completion
    first_code = len(completion) - len(completion.lstrip())
    start = completion.rfind("\n", 0, first_code) + 1
    if start == 0:
        return completion
    line = completion[start:]
    return line[len(request.line_prefix):] if line.startswith(request.line_prefix) else line


class StopDetector:
    """Incremental stop rule: fed the growing raw completion, says where it ends.

    Single-line mode: the completion ends at the first newline after some code. A newline
    (and indentation) before any code is allowed once, when the cursor ends a line whose code
    is complete (``def f():`` then ``\\n    return x``); the completion is then that next line.

    Block mode: the completion ends where a line is indented less than the block (the cursor
    line's indentation when it holds code, else the first line's), at two consecutive blank
    lines, or where a new definition starts at the block's indentation or less after some code
    (at indentation 0 that is a new top-level definition). The cut then goes back to the end
    of the last code line, before blank lines and the comments attached to that definition.
    """

    def __init__(self, request: CompletionRequestText) -> None:
        self._request = request
        self._leading_newline = _allows_leading_newline(request)
        # On an empty line a single-line completion may start with blank lines: they are dropped
        # (`skip_leading_blank_lines`) and the code goes on the cursor's line.
        self._blank_cursor_line = _on_blank_line(request)
        self._prefix_has_code = bool(request.line_prefix.strip())
        self._restart()

    def _restart(self) -> None:
        self._text = ""
        self._line_start = 0  # where the first line not yet complete starts
        self._line_no = 0
        self._cut: int | None = None
        self._base = _width(_lead(self._request.line_prefix))  # the block's indentation
        self._blank_run = 0  # consecutive blank lines just seen
        self._last_end = 0  # end of the last line with code
        self._attach_end = 0  # end of the last line with code that is no comment or decorator
        self._after_decorator = False
        self._body_seen = False  # the model wrote code that is no comment or decorator

    def feed(self, text: str) -> int | None:
        """`text` is the whole completion so far; return the cut index once the rule has fired
        (the caller stops decoding and keeps text[:cut]), else None."""
        if not text.startswith(self._text):
            self._restart()
        self._text = text
        while self._cut is None:
            newline = text.find("\n", self._line_start)
            complete = newline >= 0
            end = newline if complete else len(text)
            line = text[self._line_start : end]
            self._cut = self._check(line, end, complete)
            if self._cut is not None or not complete:
                break
            self._advance(line, end)
            self._line_start = newline + 1
            self._line_no += 1
        return self._cut

    def _check(self, line: str, end: int, complete: bool) -> int | None:
        """The cut if `line` (ending at `end`) ends the completion; decided on what is final already."""
        has_code = bool(line.strip())
        if not self._request.multiline:
            if not complete or (not has_code and (self._blank_cursor_line or (self._line_no == 0 and self._leading_newline))):
                return None
            return end
        if self._line_no == 0:
            return end if complete and not has_code and not self._leading_newline else None
        if not has_code:
            return self._last_end if complete and self._blank_run >= 1 else None
        width = _width(_lead(line))
        if width < self._base:
            return self._last_end
        if width == self._base and self._body_seen and not self._after_decorator and _DEFINITION.match(line.lstrip()):
            return self._attach_end
        return None

    def _advance(self, line: str, end: int) -> None:
        """Take a complete line that did not end the completion into account."""
        if not line.strip():
            if self._line_no > 0:
                self._blank_run += 1
            return
        full = self._request.line_prefix + line if self._line_no == 0 else line
        if self._line_no == 0 and not self._prefix_has_code:
            self._base = _width(_lead(full))
        self._blank_run = 0
        self._last_end = end
        head = full.strip()
        self._after_decorator = bool(_DECORATOR.match(head))
        if not self._after_decorator and not _COMMENT.match(head):
            self._body_seen = True
            self._attach_end = end


def _apply_stop(text: str, request: CompletionRequestText) -> str:
    """The text the stop rule keeps."""
    cut = StopDetector(request).feed(text)
    return text if cut is None else text[:cut]


# ---------------------------------------------------------------------------------------------
# Stage 1: overlap with the text after the cursor.


def _trim_line_suffix(completion: str, request: CompletionRequestText) -> str:
    """Drop the end of the completion that starts the line suffix, unless that unbalances the line."""
    suffix = request.line_suffix.rstrip()
    body = completion.rstrip(" \t")
    if not suffix.strip() or not body:
        return completion
    context = _context(request)
    before = _imbalance(context + completion + request.line_suffix)
    for k in range(min(len(suffix), len(body)), 0, -1):
        tail = suffix[:k]
        if tail.strip() and body.endswith(tail):
            kept = body[:-k]
            if _imbalance(context + kept + request.line_suffix) <= before:
                return kept
    return completion


def _trim_next_lines(completion: str, request: CompletionRequestText) -> str:
    """Drop the completion's last lines when the lines after the cursor start with them."""
    following = [line.rstrip() for line in request.next_lines if line.strip()]
    if not following or request.line_suffix.strip():
        return completion
    lines = completion.split("\n")
    full = _full_lines(lines, request)
    with_code = [i for i in range(len(lines)) if full[i].strip()]
    first = 0 if not request.line_prefix.strip() else 1
    context, after = _context(request), "\n" + "\n".join(request.next_lines)
    for start in (i for i in with_code if i >= first):
        tail = [full[i].rstrip() for i in with_code if i >= start]
        if tail == following[: len(tail)]:
            kept = "\n".join(lines[:start])
            if _imbalance(context + kept + after) <= _imbalance(context + completion + after):
                return kept
    return completion


def trim_suffix_overlap(completion: str, request: CompletionRequestText) -> str:
    """Remove the end of the completion that the text after the cursor already contains.

    The tail of the completion equal to the start of the line suffix goes (an editor's
    auto-closed bracket or quote, the rest of the line retyped), longest first, as long as the
    line is no less balanced without it; then trailing lines equal to the next lines go.
    """
    return _trim_next_lines(_trim_line_suffix(completion, request), request)


# ---------------------------------------------------------------------------------------------
# Stage 2: brackets and quotes.


def _first_misfit(tokens: list[_Token], start: int, end: int) -> tuple[int | None, bool]:
    """In the tokens of context + completion + line suffix: the first closing bracket of the
    completion that closes nothing (or the wrong kind), or quote of a one-line string it leaves
    open; and whether the suffix has a closing bracket or a quote left without a partner."""
    opened: list[str] = []
    suffix_broken = False
    for tok in tokens:
        if tok.kind == "open":
            opened.append(tok.char)
        elif tok.kind == "close":
            if opened and opened[-1] == _CLOSES[tok.char]:
                opened.pop()
            elif start <= tok.pos < end:
                return tok.pos, False
            else:
                suffix_broken |= tok.pos >= end
        elif tok.kind == "unclosed" and tok.char in _SINGLE_LINE_QUOTES:
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
    for tok in _scan(context + suffix):
        if tok.kind == "open":
            opened.append((tok.char, tok.pos))
        elif tok.kind == "close" and opened and opened[-1][0] == _CLOSES[tok.char]:
            needed += tok.pos >= start and opened[-1][1] < start
            opened.pop()
        elif tok.kind == "string" and tok.pos < start <= tok.end:
            closes_string = True
    return needed, closes_string


def _taken_from_suffix(tokens: list[_Token], start: int, end: int, context: str, suffix: str) -> int | None:
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
        elif opened and opened[-1][0] == _CLOSES[tok.char]:
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
    context = _context(request)
    start, end = len(context), len(context) + len(completion)
    tokens = _scan(context + completion + request.line_suffix)
    cut, suffix_broken = _first_misfit(tokens, start, end)
    if cut is None and suffix_broken:
        cut = _taken_from_suffix(tokens, start, end, context, request.line_suffix)
    return completion if cut is None else completion[: cut - start]


# ---------------------------------------------------------------------------------------------
# Stage 3: repetition.


def drop_repetition(completion: str, request: CompletionRequestText) -> str:
    """Cut the completion where it starts repeating the lines just before.

    Lines are compared as they read in the file (indentation included, blank lines skipped):
    where a block of lines written by the model equals the block right above it (the previous
    lines or the completion's own), the completion ends before it. This catches the model
    copying the line above, loops, and a completion identical to what is already there.
    """
    lines = completion.split("\n")
    full = _full_lines(lines, request)
    previous = [line.rstrip() for line in request.prev_lines if line.strip()]
    index = [i for i in range(len(lines)) if full[i].strip()]
    seq = previous + [full[i].rstrip() for i in index]
    written = [False] * len(previous) + [bool(lines[i].strip()) for i in index]  # line 0 may be all prefix
    for j in range(len(previous), len(seq)):
        for size in range(1, min(j, len(seq) - j) + 1):
            block = seq[j : j + size]
            if (
                block == seq[j - size : j]
                and any(ch.isalnum() for line in block for ch in line)
                and any(written[j : j + size])
            ):
                return "\n".join(lines[: index[j - len(previous)]])
    return completion


# ---------------------------------------------------------------------------------------------
# Stage 4: indentation.


def _unit(widths: list[int]) -> int:
    """The indentation step that `widths` are multiples of: 2, 3 or 4 columns (4 when unclear)."""
    step = math.gcd(*widths) if widths else 0
    return step if 2 <= step <= 4 else 4


def _indent_style(request: CompletionRequestText, lines: list[str]) -> tuple[str | None, int]:
    """The file's indentation character (None: unknown) and the columns one tab stands for."""
    known = [request.indent] + [_lead(line) for line in request.prev_lines + request.next_lines if line.strip()]
    char = next((ws[0] for ws in known if ws), None)
    if char == " ":  # a tab the model wrote becomes one step of the file's spaces
        return " ", _unit([len(ws) for ws in known if ws and "\t" not in ws])
    written = [_lead(line) for line in _full_lines(lines, request) if line.strip()]
    return char, _unit([len(ws) for ws in written if ws and "\t" not in ws])


def _render(width: int, char: str, tab: int) -> str:
    return "\t" * (width // tab) + " " * (width % tab) if char == "\t" else " " * width


def fix_indentation(completion: str, request: CompletionRequestText) -> str:
    """Re-indent the completion's lines in the file's style.

    Block completions on a line with no code yet: the first line moves to `indent` (or stays
    at the whitespace already typed when that is deeper) and the later lines keep their
    indentation relative to it. In all modes, indentation the model wrote follows the file's
    tabs or spaces (taken from `indent`, else from the neighbouring lines); when the file's
    style is unknown and nothing moves, the model's whitespace is kept.
    """
    lines = completion.split("\n")
    prefix = request.line_prefix
    char, tab = _indent_style(request, lines)
    on_new_line = not prefix.strip() and bool(lines[0].strip())
    delta, target = 0, None
    if request.multiline and on_new_line:
        target = request.indent if request.indent.startswith(prefix) else prefix
        delta = _width(target, tab) - _width(prefix + _lead(lines[0]), tab)
    out = []
    for i, line in enumerate(lines):
        code = line.lstrip(" \t")
        if i == 0:
            if target is not None:
                line = target[len(prefix) :] + code
            elif on_new_line and char is not None:
                whole = _render(_width(prefix + _lead(line), tab), char, tab)
                line = whole[len(prefix) :] + code if whole.startswith(prefix) else line
        elif not code.strip():
            line = ""
        elif delta or char is not None:
            style = char or ("\t" if line.startswith("\t") else " ")
            line = _render(max(0, _width(_lead(line), tab) + delta), style, tab) + code
        out.append(line)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Stage 5 and the pipeline.


def drop_blank(completion: str, request: CompletionRequestText) -> str | None:
    """Strip trailing whitespace on each line and trailing blank lines; None when nothing is left.

    The last line keeps its trailing whitespace when code follows the cursor on its line.
    """
    lines = [line.rstrip() for line in completion.split("\n")]
    last = completion.rsplit("\n", 1)[-1]
    if request.line_suffix.strip() and last.strip():
        lines[-1] = last
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    text = "\n".join(lines)
    return text if text.strip() else None


_STAGES: tuple[Callable[[str, CompletionRequestText], str], ...] = (
    skip_leading_blank_lines,
    trim_suffix_overlap,
    balance_brackets,
    drop_repetition,
    fix_indentation,
)
_MAX_PASSES = 8


# The reason a stage gives when it leaves nothing; any other stage: EMPTY_AFTER_POSTPROCESSING.
_EMPTIED_BY = {
    trim_suffix_overlap: NoSuggestion.DUPLICATES_SUFFIX,
    balance_brackets: NoSuggestion.UNBALANCED,
    drop_repetition: NoSuggestion.REPEATS_ABOVE,
}


def postprocess_explained(raw: str, request: CompletionRequestText) -> str | NoSuggestion:
    """Full pipeline on the model's text: the suggestion, or why nothing is left.

    Runs the stop rule (a no-op on text it already cut), the four stages in order and
    `drop_blank`, and repeats until the text no longer changes: a cut can bring a new overlap
    to the end of the text, and re-indentation changes how lines compare with their neighbours.
    The reason is the step that first left nothing but whitespace (no stage adds a character).
    """
    if not raw:
        return NoSuggestion.MODEL_WROTE_NOTHING
    text = raw
    for _ in range(_MAX_PASSES):
        result = _apply_stop(text, request)
        if not result.strip():
            return NoSuggestion.STOP_RULE_KEPT_NOTHING if len(result) < len(text) else NoSuggestion.EMPTY_AFTER_POSTPROCESSING
        for stage in _STAGES:
            result = stage(result, request)
            if not result.strip():
                return _EMPTIED_BY.get(stage, NoSuggestion.EMPTY_AFTER_POSTPROCESSING)
        cleaned = drop_blank(result, request)
        if cleaned is None:
            return NoSuggestion.EMPTY_AFTER_POSTPROCESSING
        if cleaned == text:
            return cleaned
        text = cleaned
    return text


def postprocess(raw: str, request: CompletionRequestText) -> str | None:
    """`postprocess_explained` without the reason: the suggestion, or None."""
    result = postprocess_explained(raw, request)
    return result if isinstance(result, str) else None
