"""Streamed docstrings: the summary goes into the buffer with successive `workspace/applyEdit`
calls as the model writes it, under a cancellable `$/progress`.

The first edit inserts the whole docstring (or replaces the existing one) with the summary so
far, so that the buffer always holds a well-formed docstring; later edits replace only the part
that changed. Before each edit the function's text, with what this run wrote into it, must be
found unchanged in the document (edits elsewhere are fine: the place moves with them); if it is
not, the run stops and writes nothing more.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace import PositionCodec

from ..documents import open_document, split_lines
from ..model_host import ModelUnavailable
from ..syntax import FunctionInfo, format_docstring, function_at
from .summaries import Summarizer

MAX_BACKLOG = 8  # more summary states than this waiting for the editor: skip to the newest
SETTLE_TIMEOUT_S = 5.0  # how long an applied edit may take to come back as didChange
MAX_ATTEMPTS = 3  # tries of one edit that the editor rejects because the document moved on meanwhile
EDIT_LABEL = "Generate docstring"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class DocstringResult:
    """What a run did: whether its docstring is in the buffer, with which summary, and why it stopped short."""

    applied: bool
    summary: str
    reason: str | None = None  # None: the whole summary was written

    def to_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "summary": self.summary, "reason": self.reason}


class _Feed:
    """Summary texts pushed from the model worker thread, taken in order on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._texts: deque[str] = deque()
        self._wake = asyncio.Event()
        self.finished = False
        self.cancelled = False

    def push(self, text: str) -> None:
        """Add a text (from any thread)."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._add, text)

    def _add(self, text: str) -> None:
        self._texts.append(text)
        self._wake.set()

    def finish(self) -> None:
        self.finished = True
        self._wake.set()

    def cancel(self) -> None:
        self.cancelled = True
        self._wake.set()

    async def next(self) -> str | None:
        """The next text, or the newest when more than MAX_BACKLOG wait; None once finished or cancelled."""
        while not (self.cancelled or self._texts or self.finished):
            self._wake.clear()
            await self._wake.wait()
        if self.cancelled or not self._texts:
            return None
        if len(self._texts) > MAX_BACKLOG:
            newest = self._texts[-1]
            self._texts.clear()
            return newest
        return self._texts.popleft()


def _offset(lines: Sequence[str], line: int, character: int) -> int:
    return sum(len(text) for text in lines[:line]) + character


def _position(lines: Sequence[str], offset: int) -> types.Position:
    """The (line, character) of a string offset, in Python string units."""
    for number, text in enumerate(lines):
        if offset < len(text) or (offset == len(text) and not text.endswith(("\n", "\r"))):
            return types.Position(line=number, character=offset)
        offset -= len(text)
    return types.Position(line=len(lines), character=offset)


def _splits_crlf(text: str, index: int) -> bool:
    return text[index - 1 : index + 1] == "\r\n"


class _Slot:
    """Where the docstring goes: the function's text around it, which must not change, and what
    the slot holds now (nothing, the existing docstring, or what this run wrote)."""

    def __init__(self, source: str, info: FunctionInfo) -> None:
        lines = split_lines(source)
        if info.docstring_range is not None:
            start_line, start_char, end_line, end_char = info.docstring_range
            start, end = _offset(lines, start_line, start_char), _offset(lines, end_line, end_char)
        else:
            start = end = _offset(lines, info.insert_line, info.insert_character)
        text_start = source.find(info.text, _offset(lines, info.start_line, 0))
        region_start = min(start, text_start) if text_start >= 0 else start
        region_end = max(end, text_start + len(info.text)) if text_start >= 0 else end
        self.info = info
        self.replaces = info.docstring_range is not None
        self.before = source[region_start:start]
        self.after = source[end:region_end]
        self.content = source[start:end]
        self.start = start

    def render(self, summary: str) -> str:
        """The slot's text for `summary`: the docstring `format_docstring` writes; when it replaces
        an existing one, without the indentation and line break that are already around it."""
        text = format_docstring(summary, self.info)
        return text.strip() if self.replaces else text

    def locate(self, source: str) -> int | None:
        """Offset of the slot in `source` (the occurrence nearest its last place), None if the
        function's text around it changed."""
        expected = self.before + self.content + self.after
        best: int | None = None
        found = source.find(expected)
        while found >= 0:
            start = found + len(self.before)
            if best is None or abs(start - self.start) < abs(best - self.start):
                best = start
            found = source.find(expected, found + 1)
        return best

    def edit(self, source: str, start: int, new: str, codec: PositionCodec) -> types.TextEdit:
        """The edit that turns the slot's content at `start` in `source` into `new`: only the changed middle."""
        old = self.content
        head = 0
        while head < min(len(old), len(new)) and old[head] == new[head]:
            head += 1
        while head and (_splits_crlf(old, head) or _splits_crlf(new, head)):
            head -= 1
        tail = 0
        while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
            tail += 1
        while tail and (_splits_crlf(old, len(old) - tail) or _splits_crlf(new, len(new) - tail)):
            tail -= 1
        lines = split_lines(source)
        first = codec.position_to_client_units(lines, _position(lines, start + head))
        last = codec.position_to_client_units(lines, _position(lines, start + len(old) - tail))
        return types.TextEdit(range=types.Range(start=first, end=last), new_text=new[head : len(new) - tail])


class _Progress:
    """`$/progress` for one run, cancellable by the client; silent when the client has no progress support."""

    def __init__(self, ls: LanguageServer, token: str | None) -> None:
        self._ls = ls
        self._token = token

    @classmethod
    async def begin(cls, ls: LanguageServer, title: str) -> _Progress:
        window = ls.client_capabilities.window
        if not (window and window.work_done_progress):
            return cls(ls, None)
        token = f"codet5-docstring-{uuid.uuid4().hex[:12]}"
        try:
            await ls.work_done_progress.create_async(token)
        except Exception:  # the client refused the token: run without progress
            return cls(ls, None)
        ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=True))
        return cls(ls, token)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) when the client cancels the progress."""
        future = self._ls.work_done_progress.tokens.get(self._token) if self._token else None
        if future is not None:
            future.add_done_callback(lambda f: callback() if f.cancelled() else None)

    def report(self, message: str) -> None:
        if self._token:
            self._ls.work_done_progress.report(self._token, types.WorkDoneProgressReport(message=message))

    def end(self, message: str) -> None:
        if self._token:
            self._ls.work_done_progress.end(self._token, types.WorkDoneProgressEnd(message=message))
            self._ls.work_done_progress.tokens.pop(self._token, None)
            self._token = None


class _Writer:
    """Applies the docstring for each summary state to one document through the client."""

    def __init__(self, ls: LanguageServer, uri: str, slot: _Slot) -> None:
        self.ls = ls
        self.uri = uri
        self.slot = slot
        self.summary = ""  # the summary in the buffer
        self.edits = 0

    async def show(self, summary: str) -> str | None:
        """Put the docstring for `summary` into the buffer; the reason it could not, or None."""
        if summary == self.summary:
            return None
        new = self.slot.render(summary)
        for _ in range(MAX_ATTEMPTS):
            document = open_document(self.ls.workspace, self.uri)
            if document is None:
                return "the document was closed"
            source, version = document.source, document.version
            start = self.slot.locate(source)
            if start is None:
                return "the function changed while its docstring was being written"
            edit = self.slot.edit(source, start, new, document.position_codec)
            result = await self.ls.workspace_apply_edit_async(
                types.ApplyWorkspaceEditParams(edit=self._workspace_edit(edit, version), label=EDIT_LABEL)
            )
            settled = await self._settled(version)
            if result.applied:
                if not settled:
                    return "the editor did not report the edit back"
                self.slot.content, self.slot.start, self.summary = new, start, summary
                self.edits += 1
                return None
            if not settled:  # rejected, and not because the document moved on meanwhile
                break
        return "the editor rejected the edit"

    def _workspace_edit(self, edit: types.TextEdit, version: int | None) -> types.WorkspaceEdit:
        """A versioned document edit when the client supports them, else a plain change."""
        workspace = self.ls.client_capabilities.workspace
        versioned = workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes
        if versioned and version is not None:
            document = types.OptionalVersionedTextDocumentIdentifier(uri=self.uri, version=version)
            return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(text_document=document, edits=[edit])])
        return types.WorkspaceEdit(changes={self.uri: [edit]})

    async def _settled(self, version: int | None) -> bool:
        """Wait until the client's didChange for an applied edit has arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        while True:
            document = open_document(self.ls.workspace, self.uri)
            if document is None:
                return False
            if document.version != version:
                return True
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.005)


def _finish(feed: _Feed, task: asyncio.Future) -> None:
    """End the feed once the summary is done; its error, if any, is read where the run awaits it."""
    feed.finish()
    if not task.cancelled():
        task.exception()  # retrieved here too: a run that stopped early never awaits it


async def write_docstring(
    ls: LanguageServer, summarizer: Summarizer, uri: str, language: str | None, line: int, character: int
) -> DocstringResult:
    """Write (or rewrite) the docstring of the function at (line, character) (Python string
    units) of the open document `uri`, streaming the summary into the buffer."""
    document = open_document(ls.workspace, uri)
    info = function_at(document.source, language, line, character) if document is not None and language else None
    if info is None:
        missing = "no function at the position" if language else "docstrings are off or unsupported for this document"
        return DocstringResult(False, "", missing)
    writer = _Writer(ls, uri, _Slot(document.source, info))
    feed = _Feed(asyncio.get_running_loop())
    progress = await _Progress.begin(ls, f"Writing the docstring of {info.name or 'the function'}")
    progress.on_cancel(feed.cancel)
    summarizing = asyncio.ensure_future(summarizer.summary(info, feed.push))
    summarizing.add_done_callback(lambda task: _finish(feed, task))
    reason: str | None = None
    try:
        while reason is None and (text := await feed.next()) is not None:
            reason = await writer.show(text)
            progress.report(writer.summary)
        if reason is None and feed.cancelled:
            reason = CANCELLED
        if reason is None:
            try:
                summary = await summarizing
            except ModelUnavailable as exc:
                ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"codet5-lsp: {exc}"))
                reason = str(exc)
            else:
                reason = await writer.show(summary) if summary else "the model wrote no summary"
    finally:
        if not summarizing.done():
            summarizing.cancel()
        progress.end(reason or "Done")
    return DocstringResult(writer.edits > 0, writer.summary, reason)
