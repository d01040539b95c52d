"""Context from other files: what the user's other open documents say that the code at the
cursor may need.

An editor's other tabs often hold what the line being written needs: the class it calls, the
function it imports. Two kinds of chunk go in front of the prompt, each after the model's file
separator and its file's name, within a token budget:

- the *outline* of each other document the code above the cursor refers to (its module's name,
  the file's stem or a package file's folder, is one of the query's words, as an imported module
  is, or it defines one of its identifiers): its top-level definition lines (`def`, `class`,
  `function`, `fn`, `func`, ...), the API a call into it needs;
- then the windows of CHUNK_LINES lines of the other documents (those without an outline in)
  whose identifiers are most like the query's (Jaccard similarity).

The query is the lines above the cursor's chunk and the import lines above them; it ends where the
prompt's cached part can end (`STATIC_CHUNK_LINES`), so while the user types inside one chunk the
choice, and with it the start of the prompt, stays the same and the engine keeps reusing its
cached state. The best chunk comes last, nearest the code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

CHUNK_LINES = 16  # lines of a window of another file
CHUNK_STRIDE = 8  # windows start every this many lines (they overlap by half)
QUERY_LINES = 48  # lines above the cursor's chunk whose identifiers are matched
MIN_SCORE = 0.08  # windows less similar than this are not worth their tokens
MAX_CHUNKS = 4
MAX_FILE_CHARS = 500_000  # a larger document is not searched
HEADER_TOKENS = 8  # a chunk's file separator and file name, as counted against the budget
_DEFINITION = re.compile(  # a top-level definition line; group 1: the name it defines
    r"^(?:(?:export|default|pub(?:\([^)]*\))?|public|private|protected|internal|static|abstract|final|async|unsafe)\s+)*"
    r"(?:def|class|function|interface|type|enum|struct|trait|fn|func|impl|record)\s+([A-Za-z_]\w*)"
)
_IMPORT = re.compile(r"^\s*(?:import|from|use|using|#include|package)\s|\brequire\(")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HYPHENATED = re.compile(r"[A-Za-z_]\w*(?:-\w+)+")  # `require('./buffer-util')` names the module buffer-util.js
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_COMMON = frozenset(
    "and any args assert async await bool break case catch class const continue def default del elif else "
    "enum except export extends false final finally for from func function impl import int interface kwargs "
    "lambda len let list match mut new none not null package pass print private protected pub public raise "
    "return self self_ static str string struct super switch this throw throws true try type use var void "
    "while with yield None True False".split()
)


@dataclass(frozen=True)
class OtherFile:
    """A document the user has open besides the one being completed."""

    uri: str
    text: str


@dataclass(frozen=True)
class Chunk:
    """A window of another file's lines, with the name the prompt gives its file."""

    name: str
    first_line: int
    text: str
    score: float


def file_name(uri: str) -> str:
    """The name a file goes by in a prompt: its last two path components (`package/module.py`)."""
    path = unquote(urlparse(uri).path) or uri
    return "/".join(part for part in path.split("/")[-2:] if part)


def identifiers(text: str) -> frozenset[str]:
    """The distinctive identifiers of `text` (three characters or more, common keywords left out)."""
    return frozenset(_IDENTIFIER.findall(text)) - _COMMON


@functools.lru_cache(maxsize=32)
def _windows(text: str) -> tuple[tuple[int, str, frozenset[str]], ...]:
    """(first line, text, identifiers) of each window of `text` (none for binary text); cached per document text."""
    if "\x00" in text:
        return ()
    lines = text.splitlines(keepends=True)
    starts = range(0, max(1, len(lines) - CHUNK_LINES + CHUNK_STRIDE), CHUNK_STRIDE)
    windows = []
    for start in starts:
        window = "".join(lines[start: start + CHUNK_LINES])
        if window.strip():
            windows.append((start, window if window.endswith("\n") else window + "\n", identifiers(window)))
    return tuple(windows)


@functools.lru_cache(maxsize=32)
def _outline(text: str) -> tuple[str, frozenset[str]]:
    """The top-level definition lines of `text`, and the names they define."""
    if "\x00" in text:
        return "", frozenset()
    matches = [(line, m) for line in text.splitlines() if (m := _DEFINITION.match(line))]
    return "".join(line.rstrip() + "\n" for line, _ in matches), frozenset(m.group(1) for _, m in matches)


def query_lines(lines: Sequence[str], line: int, chunk_lines: int) -> str:
    """The lines whose identifiers pick the chunks for a cursor on `line`: the QUERY_LINES above the
    start of its `chunk_lines`-line chunk (the lines above the cursor in a document's first chunk),
    after the import lines above them."""
    end = (line // chunk_lines) * chunk_lines or line
    first = max(0, end - QUERY_LINES)
    return "".join([*(ln for ln in lines[:first] if _IMPORT.search(ln)), *lines[first:end]])


_PACKAGE_FILES = frozenset({"__init__", "index", "mod", "lib"})  # a file named for its folder's module


def _module_name(uri: str) -> str:
    """The name code uses for the module in `uri`: its file's stem, or its folder's name for a
    package's own file (`re/__init__.py` is `re`)."""
    parts = file_name(uri).split("/")
    stem = parts[-1].split(".", 1)[0]
    return parts[-2] if stem in _PACKAGE_FILES and len(parts) > 1 else stem


def _fit_lines(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    """The first whole lines of `text` that fit `budget` tokens."""
    lines = text.splitlines(keepends=True)
    while lines and count_tokens("".join(lines)) > budget:
        lines = lines[: len(lines) * 3 // 4] if len(lines) > 4 else lines[:-1]
    return "".join(lines)


@functools.lru_cache(maxsize=4)
def _similar_windows(files: tuple[OtherFile, ...], query: str) -> tuple[tuple[float, int, str, int, str], ...]:
    """(score, -order, uri, first line, text) of the windows of `files` at least MIN_SCORE like
    `query`, best first; cached, as the query stays the same while the user types in one chunk."""
    wanted = identifiers(query)
    scored = []
    for order, other in enumerate(files):
        for start, text, names in _windows(other.text):
            score = len(wanted & names) / len(wanted | names) if names else 0.0
            if score >= MIN_SCORE:
                scored.append((score, -order, other.uri, start, text))
    return tuple(sorted(scored, reverse=True))


def pick_chunks(
    files: tuple[OtherFile, ...], query: str, budget_tokens: int, count_tokens: Callable[[str], int],
    exclude: str = "",
) -> list[Chunk]:
    """The outlines of the `files` that `query` refers to, then their windows most similar to it,
    that fit `budget_tokens`, best last; windows whose text is part of `exclude` (already in the
    prompt) are left out."""
    wanted = identifiers(query)
    if not wanted or budget_tokens <= 0:
        return []
    used = set(_WORD.findall(query)) | set(_HYPHENATED.findall(query))  # module names may be short (`re`) or hyphenated
    files = tuple(other for other in files if len(other.text) <= MAX_FILE_CHARS)
    picked: list[Chunk] = []
    spent = 0
    for other in files:
        if len(picked) == MAX_CHUNKS:
            break
        outline, names = _outline(other.text)
        if outline and (_module_name(other.uri) in used or names & wanted):
            text = _fit_lines(outline, budget_tokens - spent - HEADER_TOKENS, count_tokens)
            if text:
                picked.append(Chunk(file_name(other.uri), -1, text, 1.0))
                spent += count_tokens(text) + HEADER_TOKENS
    for score, _, uri, start, text in _similar_windows(files, query):
        if len(picked) == MAX_CHUNKS:
            break
        name = file_name(uri)
        if any(c.name == name and (c.first_line < 0 or abs(c.first_line - start) < CHUNK_LINES) for c in picked):
            continue  # the file's outline is in, or the window overlaps one of it already picked
        cost = count_tokens(text) + HEADER_TOKENS
        if spent + cost <= budget_tokens and text not in exclude:
            picked.append(Chunk(name, start, text, score))
            spent += cost
    return picked[::-1]


def render(chunks: Sequence[Chunk], separator: str, current_uri: str) -> str:
    """The chunks as the prompt's first files, then the header of the current file."""
    if not chunks:
        return ""
    return "".join(f"{separator}{c.name}\n{c.text}" for c in chunks) + f"{separator}{file_name(current_uri)}\n"
