"""Context builder: the text around the cursor, cut to a token budget, shaped to stay stable.

One budget: `CompletionOptions.context_tokens` (at most the model's window) holds the prompt and
the output; the prompt stage gives the model the same number, plus what other files add. One windowing scheme: the prefix
window starts on a line that is a multiple of the prompt's STATIC_CHUNK_LINES, the step in which
the cached part of a prompt grows, so while the user types on one line (or moves a few lines)
the start of the prompt stays byte-identical and the engine can reuse the model state it
computed for it. Imports and the enclosing definitions' signatures that fall above the window
are put in front of it; in front of all, when the model has a file separator, the chunks of the
user's other open documents that look most like the code above the cursor (`other_files.py`):
at most 1/OTHER_FILES_SHARE of the prefix's budget more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..models.prompt_formats import STATIC_CHUNK_LINES
from ..syntax import CompletionSyntax, analyze_completion
from .indentation import lead
from .lines import split_lines
from .options import CompletionOptions
from .other_files import OtherFile, pick_chunks, query_lines, render
from .request import CompletionRequestText
from .trace import Trace, traced

SYNTAX_RADIUS_LINES = 1500  # tree-sitter sees at most this many lines on each side of the cursor
NEIGHBOUR_LINES = 5
SUFFIX_SHARE = 4
MAX_CHARS_PER_TOKEN = 12  # the suffix gets at most 1/SUFFIX_SHARE of the prompt budget
PROMPT_RESERVE_TOKENS = 8  # of the budget, for the prompt format's own tokens and the healing cut
# Other files' chunks add at most a third of the prefix's budget to the prompt. On top, not out of
# it: taken from the prefix, they pushed definitions of the file itself out of the window and cost
# lines that need nothing from other files (the repository check's control tasks, bench/RESULTS.md).
OTHER_FILES_SHARE = 3

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class CompletionContext:
    prefix: str  # prompt text before the cursor (header + window + line prefix)
    suffix: str  # text after the cursor, within budget
    request: CompletionRequestText  # what post-processing needs to know
    max_new_tokens: int
    other_files: str = ""  # chunks of other files, each after the file separator, then the current file's
    other_files_tokens: int = 0  # their cost, on top of the budget of the current file's text


@dataclass(frozen=True)
class Neighbourhood:
    """The user's other open documents and how the model separates files (its file separator)."""

    uri: str  # the document being completed
    files: tuple[OtherFile, ...]
    separator: str


def _fit_prefix(lines: list[str], line: int, line_prefix: str, budget: int, count: TokenCounter) -> int:
    """First line of the prefix window: a chunk boundary as early as the budget allows."""

    def cost(start: int) -> int:
        return count("".join(lines[start:line]) + line_prefix)

    earliest, chars = line, len(line_prefix)  # no window of more than MAX_CHARS_PER_TOKEN * budget chars fits
    while earliest > 0 and chars + len(lines[earliest - 1]) <= budget * MAX_CHARS_PER_TOKEN:
        earliest -= 1
        chars += len(lines[earliest])
    if earliest == 0 and cost(0) <= budget:
        return 0
    start = (line // STATIC_CHUNK_LINES) * STATIC_CHUNK_LINES
    while start - STATIC_CHUNK_LINES >= earliest and cost(start - STATIC_CHUNK_LINES) <= budget:
        start -= STATIC_CHUNK_LINES
    while start < line and cost(start) > budget:  # even the cursor's own chunk is too long
        start += 1
    return start


def _fit_suffix(lines: list[str], line: int, character: int, budget: int, count: TokenCounter) -> str:
    """Text after the cursor, whole lines, as many as the budget allows (at most a few hundred)."""
    suffix = lines[line][character:]
    for next_line in lines[line + 1: line + 200]:
        if count(suffix + next_line) > budget:
            break
        suffix += next_line
    return suffix


def _header(syntax: CompletionSyntax, window_text: str) -> str:
    """Imports and enclosing signatures that the window does not already contain."""
    missing = [text for text in [*syntax.imports, *syntax.scope_headers] if text not in window_text]
    return "".join(text if text.endswith("\n") else text + "\n" for text in missing)


def build_context(
    text: str,
    line: int,
    character: int,
    language: str | None,
    options: CompletionOptions,
    count_tokens: TokenCounter,
    trace: Trace | None = None,
    neighbourhood: Neighbourhood | None = None,
) -> CompletionContext:
    """The prompt text and post-processing facts for a completion at (line, character).

    `line` and `character` index the document's lines and a line's Python characters.
    `trace` hears the syntax analysis as the stage "syntax".
    """
    lines = split_lines(text)
    if line >= len(lines):  # cursor on the empty last line after a final newline
        lines.append("")
    cursor_line = lines[line].rstrip("\r\n")
    character = min(character, len(cursor_line))
    line_prefix, line_suffix = cursor_line[:character], cursor_line[character:]

    syntax = traced(trace, "syntax", lambda: _analyze(lines, line, character, language, line_prefix))
    multiline = {"line": False, "block": True}.get(options.mode, syntax.multiline)
    max_new = options.max_new_tokens if not multiline else min(256, options.max_new_tokens * 3)

    budget = max(32, options.context_tokens - max_new - PROMPT_RESERVE_TOKENS)
    suffix_budget = budget // SUFFIX_SHARE
    others = ""
    if neighbourhood is not None and neighbourhood.files:
        chunks = pick_chunks(neighbourhood.files, query_lines(lines, line, STATIC_CHUNK_LINES),
                             (budget - suffix_budget) // OTHER_FILES_SHARE, count_tokens, exclude=text)
        others = render(chunks, neighbourhood.separator, neighbourhood.uri)
    start = _fit_prefix(lines, line, line_prefix, budget - suffix_budget, count_tokens)
    window = "".join(lines[start:line])
    prefix_line = line_prefix
    if start == line and count_tokens(line_prefix) > budget - suffix_budget:  # one enormous line
        prefix_line = line_prefix[-(budget - suffix_budget) * 2:]
    header = _header(syntax, window) if start > 0 else ""
    if header and count_tokens(header + window + prefix_line) > budget - suffix_budget:
        header = ""
    request = CompletionRequestText(
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        prev_lines=[ln.rstrip("\r\n") for ln in lines[max(0, line - NEIGHBOUR_LINES): line]],
        next_lines=[ln.rstrip("\r\n") for ln in lines[line + 1: line + 1 + NEIGHBOUR_LINES]],
        multiline=multiline,
        indent=syntax.indent,
    )
    return CompletionContext(
        prefix=header + window + prefix_line,
        suffix=_fit_suffix(lines, line, character, suffix_budget, count_tokens),
        request=request,
        max_new_tokens=max_new,
        other_files=others,
        other_files_tokens=count_tokens(others) if others else 0,
    )


def _analyze(lines: list[str], line: int, character: int, language: str | None, line_prefix: str) -> CompletionSyntax:
    """What tree-sitter says at the cursor, from the lines within SYNTAX_RADIUS_LINES of it."""
    if language is None:
        return CompletionSyntax(multiline=False, indent=lead(line_prefix), scope_headers=[], imports=[],
                                scope_start_line=None)
    first = max(0, line - SYNTAX_RADIUS_LINES)
    region = "".join(lines[first: line + SYNTAX_RADIUS_LINES])
    return analyze_completion(region, language, line - first, character)
