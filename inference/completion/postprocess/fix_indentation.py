"""Stage: the completion's lines re-indented in the file's style."""

from __future__ import annotations

import math

from ..indentation import lead, width
from ..request import CompletionRequestText

def _unit(widths: list[int]) -> int:
    """The indentation step that `widths` are multiples of: 2, 3 or 4 columns (4 when unclear)."""
    step = math.gcd(*widths) if widths else 0
    return step if 2 <= step <= 4 else 4


def _indent_style(request: CompletionRequestText, lines: list[str]) -> tuple[str | None, int]:
    """The file's indentation character (None: unknown) and the columns one tab stands for."""
    known = [request.indent] + [lead(line) for line in request.prev_lines + request.next_lines if line.strip()]
    char = next((ws[0] for ws in known if ws), None)
    if char == " ":  # a tab the model wrote becomes one step of the file's spaces
        return " ", _unit([len(ws) for ws in known if ws and "\t" not in ws])
    written = [lead(line) for line in request.full_lines(lines) if line.strip()]
    return char, _unit([len(ws) for ws in written if ws and "\t" not in ws])


def _render(columns: int, char: str, tab: int) -> str:
    return "\t" * (columns // tab) + " " * (columns % tab) if char == "\t" else " " * columns


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
        delta = width(target, tab) - width(prefix + lead(lines[0]), tab)
    out = []
    for i, line in enumerate(lines):
        code = line.lstrip(" \t")
        if i == 0:
            if target is not None:
                line = target[len(prefix) :] + code
            elif on_new_line and char is not None:
                whole = _render(width(prefix + lead(line), tab), char, tab)
                line = whole[len(prefix) :] + code if whole.startswith(prefix) else line
        elif not code.strip():
            line = ""
        elif delta or char is not None:
            style = char or ("\t" if line.startswith("\t") else " ")
            line = _render(max(0, width(lead(line), tab) + delta), style, tab) + code
        out.append(line)
    return "\n".join(out)
