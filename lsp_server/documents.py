"""Open documents as LSP defines them, kept in sync at a cost that follows the edit, not the document.

pygls's TextDocument splits lines with `str.splitlines`, which also breaks at form feeds,
U+2028 and other separators that LSP does not count, and maps a character past the end of the
last line one character short: edits after such characters landed on the wrong line or
column, and the server's copy of the document drifted from the editor's. Here lines end at
`\\n`, `\\r\\n` or `\\r` only, and a position past the end of its line means the end of the line
(before its line break), as the specification says.

pygls also re-split the whole document and walked the edited line character by character in
Python for every change: 0.4 s per keystroke on a 1 MB single-line file, 2 s at 5 MB. Here each
document keeps a `LineIndex` (line starts, and the few characters that take more than one
position unit), updated per change by looking only at the changed text and its two
neighbours; positions convert through it by binary search. What remains proportional to the
document is C-level copying (the new text, the index arrays).

A change whose range ends before it starts is applied as the range from its earlier to its
later end (clients normalise ranges so), with a logged warning: its text is never dropped.

Lone surrogates (JSON can carry them; no tokenizer can encode them) are stored as U+FFFD: one
code point and one UTF-16 unit each, so every position still matches the editor's.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

import numpy as np
from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

from inference.completion.lines import split_lines

log = logging.getLogger(__name__)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_LF, _CR = 10, 13
RECENT_CHANGES = 64  # changes each document remembers, for a server edit to find itself among them
MAX_REMEMBERED_CHARS = 65_536  # longer texts of a change are not remembered


def encodable(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (same length in code points and UTF-16)."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The open document `uri` names, None if it is not open. The workspace keys documents by
    their decoded URI, and editors percent-encode spaces and non-ASCII characters."""
    return workspace.text_documents.get(unquote(uri))


def code_points(text: str) -> np.ndarray:
    """The code points of `text` (which holds no lone surrogate) as an array."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _extra_units(points: np.ndarray, encoding: str) -> np.ndarray:
    """Position units beyond one that each code point takes in `encoding`."""
    if encoding == types.PositionEncodingKind.Utf32:
        return np.zeros(len(points), dtype=np.int64)
    if encoding == types.PositionEncodingKind.Utf8:
        return (points > 0x7F).astype(np.int64) + (points > 0x7FF) + (points > 0xFFFF)
    return (points > 0xFFFF).astype(np.int64)  # UTF-16, LSP's default


def _line_starts(text: str, first: int, last: int) -> np.ndarray:
    """The line starts s with max(first, 1) <= s <= last: offsets right after a `\\n`, or after a
    `\\r` not followed by `\\n`. Looks at text[first - 1 : last + 1] only."""
    low = max(first - 1, 0)
    points = code_points(text[low : last + 1])
    lf = points == _LF
    breaks = lf | ((points == _CR) & ~np.append(lf[1:], False))
    starts = low + np.flatnonzero(breaks) + 1
    return starts[(starts >= max(first, 1)) & (starts <= last)].astype(np.int64)


@dataclass(frozen=True)
class LineIndex:
    """Where the lines of a text start, and its characters that take more than one position unit.

    `starts[0]` is 0; a text ending in a line break has a last start at its end (the empty line
    after it). `wide` holds the offsets of the multi-unit characters and `cumulative[k]` the
    extra units of the first k of them. Never changed in place (copies of a document share it).
    """

    encoding: str
    starts: np.ndarray
    wide: np.ndarray
    extra: np.ndarray
    cumulative: np.ndarray

    @classmethod
    def build(cls, text: str, encoding: str) -> LineIndex:
        starts = np.concatenate(([0], _line_starts(text, 1, len(text))))
        return cls._with(encoding, starts, *cls._wide_in(text, 0, encoding))

    @classmethod
    def _with(cls, encoding: str, starts: np.ndarray, wide: np.ndarray, extra: np.ndarray) -> LineIndex:
        return cls(encoding, starts.astype(np.int64), wide.astype(np.int64), extra.astype(np.int64),
                   np.concatenate(([0], np.cumsum(extra))).astype(np.int64))

    @staticmethod
    def _wide_in(piece: str, at: int, encoding: str) -> tuple[np.ndarray, np.ndarray]:
        extra = _extra_units(code_points(piece), encoding)
        where = np.flatnonzero(extra)
        return where + at, extra[where]

    def edited(self, text: str, start: int, end: int, inserted: int) -> LineIndex:
        """The index of `text`, which is this index's text with [start, end) replaced by `inserted` characters."""
        delta = inserted - (end - start)
        keep_starts = self.starts[: np.searchsorted(self.starts, start, "left")]
        tail_starts = self.starts[np.searchsorted(self.starts, end + 1, "left") :] + delta
        starts = np.concatenate((keep_starts if start > 0 else [0], _line_starts(text, start, start + inserted), tail_starts))
        low, high = np.searchsorted(self.wide, start, "left"), np.searchsorted(self.wide, end, "left")
        wide, extra = self._wide_in(text[start : start + inserted], start, self.encoding)
        return self._with(self.encoding, starts, np.concatenate((self.wide[:low], wide, self.wide[high:] + delta)),
                          np.concatenate((self.extra[:low], extra, self.extra[high:])))

    def _extra_before(self, offset: int) -> int:
        return int(self.cumulative[np.searchsorted(self.wide, offset, "left")])

    def units(self, start: int, end: int) -> int:
        """Position units of text[start:end]."""
        return end - start + self._extra_before(end) - self._extra_before(start)

    def offset_in_line(self, start: int, end: int, units: int) -> int:
        """The offset `units` position units after `start`, within [start, end]; a position inside
        a multi-unit character means the end of that character."""
        low, high = np.searchsorted(self.wide, start, "left"), np.searchsorted(self.wide, end, "left")
        base = self.cumulative[low]
        unit_starts = self.wide[low:high] - start + self.cumulative[low:high] - base
        before = int(np.searchsorted(unit_starts, units, "left"))  # wide characters starting before `units`
        if before == 0:
            return min(start + units, end)
        last = low + before - 1
        if units < unit_starts[before - 1] + self.extra[last] + 1:  # inside that character
            return int(self.wide[last]) + 1
        return min(start + units - int(self.cumulative[last + 1] - base), end)


@dataclass(frozen=True)
class AppliedChange:
    """One change applied to a document, number `serial` of its life: at `start`, `removed`
    characters replaced by `inserted` ones (the texts themselves when short, else None)."""

    serial: int
    start: int
    removed: int
    inserted: int
    removed_text: str | None
    inserted_text: str | None

    def moved(self, offset: int) -> int | None:
        """Where the text at `offset` before this change is after it; None when the change replaced it."""
        if offset >= self.start + self.removed and (offset > self.start or not self.inserted):
            return offset + self.inserted - self.removed
        return offset if offset < self.start else None


def _remembered(text: str) -> str | None:
    return text if len(text) <= MAX_REMEMBERED_CHARS else None


class LspTextDocument(TextDocument):
    """A TextDocument whose lines and positions follow LSP, with fast position conversion."""

    def __init__(self, uri: str, source: str | None = None, *args, **kwargs) -> None:
        super().__init__(uri, None if source is None else encodable(source), *args, **kwargs)
        self._index: LineIndex | None = None
        self._index_of: str | None = None
        self._lines: tuple[str, ...] = ()
        self._lines_of: str | None = None
        self.serial = 0  # changes applied so far
        self.changes: deque[AppliedChange] = deque(maxlen=RECENT_CHANGES)

    @property
    def index(self) -> LineIndex:
        """The line index of the current text (built on first use after a full change)."""
        source = self.source
        if self._index is None or self._index_of is not source:
            self._index, self._index_of = LineIndex.build(source, self.position_codec.encoding or ""), source
        return self._index

    @property
    def lines(self) -> Sequence[str]:
        source = self.source
        if self._lines_of is not source:
            self._lines, self._lines_of = tuple(split_lines(source)), source
        return self._lines

    @property
    def line_count(self) -> int:
        """Number of lines, as `lines` counts them (no empty line after a final line break)."""
        source = self.source
        return len(self.index.starts) - (1 if not source or source[-1] in "\r\n" else 0)

    def line_span(self, line: int) -> tuple[int, int]:
        """(offset of the line's start, offset of its end before the line break); past the last
        line: the end of the document."""
        source, starts = self.source, self.index.starts
        if line >= len(starts):
            return len(source), len(source)
        start = int(starts[line])
        if line + 1 == len(starts):
            return start, len(source)
        end = int(starts[line + 1]) - 1
        return start, end - 1 if source[end - 1 : end + 1] == "\r\n" else end

    def offset_at(self, position: types.Position) -> int:
        """The offset of a client position, clamped as LSP says (past the end of a line: its end)."""
        start, end = self.line_span(position.line)
        return self.index.offset_in_line(start, end, position.character)

    def position_at(self, offset: int) -> types.Position:
        """The client position of an offset."""
        index = self.index
        line = int(np.searchsorted(index.starts, offset, "right")) - 1
        return types.Position(line=line, character=index.units(int(index.starts[line]), offset))

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        source, index = self.source, self.index
        start, end = self.offset_at(change.range.start), self.offset_at(change.range.end)
        if start > end:
            log.warning("%s: a change's range ends before it starts (%s); applied from its earlier end to its later one",
                        self.uri, change.range)
            start, end = end, start
        text = encodable(change.text)
        self._source = source[:start] + text + source[end:]
        self._index, self._index_of = index.edited(self._source, start, end, len(text)), self._source
        self._record(start, end - start, source[start:end] if end - start <= MAX_REMEMBERED_CHARS else None, text)

    def _apply_full_change(self, change: types.TextDocumentContentChangeEvent) -> None:
        removed = len(self.source)
        self._source = encodable(change.text)
        self._record(0, removed, None, self._source)

    def _record(self, start: int, removed: int, removed_text: str | None, inserted: str) -> None:
        self.serial += 1
        self.changes.append(AppliedChange(self.serial, start, removed, len(inserted), removed_text, _remembered(inserted)))


class LspWorkspace(Workspace):
    """A Workspace whose text documents are LspTextDocuments."""

    @classmethod
    def like(cls, workspace: Workspace) -> LspWorkspace:
        """An empty LspWorkspace with the root, sync kind, folders and position encoding of `workspace`."""
        return cls(workspace.root_uri, workspace._sync_kind, list(workspace.folders.values()), workspace.position_encoding)

    def _create_text_document(self, doc_uri: str, source: str | None = None, version: int | None = None,
                              language_id: str | None = None) -> TextDocument:
        return LspTextDocument(doc_uri, source=source, version=version, language_id=language_id,
                               sync_kind=self._sync_kind, position_codec=self.position_codec)
