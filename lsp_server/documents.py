"""Open documents as LSP defines them.

pygls's TextDocument splits lines with `str.splitlines`, which also breaks at form feeds,
U+2028 and other separators that LSP does not count, and maps a character past the end of the
last line one character short: edits after such characters landed on the wrong line or
column, and the server's copy of the document drifted from the editor's. Here lines end at
`\\n`, `\\r\\n` or `\\r` only, and a position past the end of its line means the end of the line
(before its line break), as the specification says.

Lone surrogates (JSON can carry them; no tokenizer can encode them) are stored as U+FFFD: one
code point and one UTF-16 unit each, so every position still matches the editor's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")  # str.splitlines breaks here, LSP does not
_LINE_BREAK_END = re.compile(r"(?:\r\n|\r|\n)\Z")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def split_lines(text: str) -> list[str]:
    """The lines of `text` with their line breaks, split at `\\n`, `\\r\\n` and `\\r` only."""
    return _LINE.findall(text) if _OTHER_BREAKS.search(text) else text.splitlines(keepends=True)


def encodable(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (same length in code points and UTF-16)."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The open document `uri` names, None if it is not open. The workspace keys documents by
    their decoded URI, and editors percent-encode spaces and non-ASCII characters."""
    return workspace.text_documents.get(unquote(uri))


class LspTextDocument(TextDocument):
    """A TextDocument whose lines and positions follow LSP."""

    def __init__(self, uri: str, source: str | None = None, *args, **kwargs) -> None:
        super().__init__(uri, None if source is None else encodable(source), *args, **kwargs)

    @property
    def lines(self) -> Sequence[str]:
        return tuple(split_lines(self.source))

    def _clamp(self, lines: Sequence[str], position: types.Position) -> types.Position:
        """`position` with a character past the end of its line moved to the line's end."""
        if position.line >= len(lines):
            return types.Position(line=len(lines), character=0)  # the end of the document
        content = _LINE_BREAK_END.sub("", lines[position.line])
        return types.Position(line=position.line, character=min(position.character, self.position_codec.client_num_units(content)))

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        lines = self.lines
        clamped = types.Range(start=self._clamp(lines, change.range.start), end=self._clamp(lines, change.range.end))
        super()._apply_incremental_change(types.TextDocumentContentChangePartial(range=clamped, text=encodable(change.text)))

    def _apply_full_change(self, change: types.TextDocumentContentChangeEvent) -> None:
        self._source = encodable(change.text)


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
