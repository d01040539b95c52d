"""Streamed docstrings: the summary goes into the buffer with successive `workspace/applyEdit`
calls as the model writes it, under a cancellable `$/progress`.

The first edit inserts the whole docstring (or replaces the existing one) with the summary so
far, so that the buffer always holds a well-formed docstring; later edits replace only the part
that changed. Before each edit the function's text, with what this run wrote into it, must be
found unchanged in the document (edits elsewhere are fine: the place moves with them); if it is
not, the run stops and writes nothing more.

Only clients that take versioned edits (`workspace.workspaceEdit.documentChanges`) get the
stream: such an edit is applied only to the version it was computed for. Other clients apply
an edit wherever its positions point in their newest text, so while the user types a streamed
edit lands in the wrong place; they get the whole docstring in one edit once the summary is
done, computed against the newest document. Every edit the client says it applied is looked
for in the changes it reports next: one that never shows up is a failure, and one that landed
elsewhere than meant is taken out again. An edit request the client does not answer in
APPLY_TIMEOUT_S ends the run. Each failure ends the progress and is shown to the user.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from inference.syntax import FunctionInfo, format_docstring, function_at

from ..documents import AppliedChange, LspTextDocument, open_document
from ..model_host import ModelUnavailable
from .summarizer import Summarizer

MAX_BACKLOG = 8  # more summary states than this waiting for the editor: skip to the newest
SETTLE_TIMEOUT_S = 5.0  # how long an applied edit may take to come back as didChange
APPLY_TIMEOUT_S = 10.0  # how long the client may take to answer an edit request
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


def _splits_crlf(text: str, index: int) -> bool:
    return text[index - 1 : index + 1] == "\r\n"


@dataclass(frozen=True)
class _Edit:
    """A server edit: the LSP edit, and where it goes in the text it was computed for (offsets)."""

    text_edit: types.TextEdit
    start: int
    removed: int

    @property
    def inserted(self) -> str:
        return self.text_edit.new_text


class _Slot:
    """Where the docstring goes: the function's text around it, which must not change, and what
    the slot holds now (nothing, the existing docstring, or what this run wrote)."""

    def __init__(self, document: LspTextDocument, info: FunctionInfo) -> None:
        source = document.source

        def offset(line: int, character: int) -> int:
            return document.line_span(line)[0] + character

        if info.docstring_range is not None:
            start_line, start_char, end_line, end_char = info.docstring_range
            start, end = offset(start_line, start_char), offset(end_line, end_char)
        else:
            start = end = offset(info.insert_line, info.insert_character)
        text_start = source.find(info.text, offset(info.start_line, 0))
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

    def locate(self, source: str, content: str | None = None) -> int | None:
        """Offset of the slot in `source` (the occurrence nearest its last place), holding
        `content` (default: what it holds now); None if the function's text around it changed."""
        expected = self.before + (self.content if content is None else content) + self.after
        best: int | None = None
        found = source.find(expected)
        while found >= 0:
            start = found + len(self.before)
            if best is None or abs(start - self.start) < abs(best - self.start):
                best = start
            found = source.find(expected, found + 1)
        return best

    def edit(self, document: LspTextDocument, start: int, new: str) -> _Edit:
        """The edit that turns the slot's content at `start` in `document` into `new`: only the changed middle."""
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
        first, last = document.position_at(start + head), document.position_at(start + len(old) - tail)
        text_edit = types.TextEdit(range=types.Range(start=first, end=last), new_text=new[head : len(new) - tail])
        return _Edit(text_edit, start + head, len(old) - tail - head)


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


def _find_change(document: LspTextDocument, since: int, edit: _Edit) -> AppliedChange | None:
    """The first change after change number `since` that made `edit`'s change (same text
    replacing as many characters)."""
    return next((c for c in document.changes if c.serial > since and c.inserted_text == edit.inserted
                 and c.removed == edit.removed), None)


def _follow(document: LspTextDocument, offset: int | None, after: int, until: int | None = None) -> int | None:
    """Where `offset` (in the text after change number `after`) is after the later changes (up to
    change number `until`); None when one of them replaced it or is forgotten."""
    if document.changes and document.changes[0].serial > after + 1:
        return None
    for change in document.changes:
        if offset is None or (until is not None and change.serial > until):
            break
        if change.serial > after:
            offset = change.moved(offset)
    return offset


class _Writer:
    """Applies the docstring for each summary state to one document through the client, and
    checks in the document that each edit landed where it was meant to."""

    def __init__(self, ls: LanguageServer, uri: str, slot: _Slot) -> None:
        self.ls = ls
        self.uri = uri
        self.slot = slot
        self.summary = ""  # the summary in the buffer
        self.edits = 0
        workspace = ls.client_capabilities.workspace
        self.versioned = bool(workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes)

    async def show(self, summary: str) -> str | None:
        """Put the docstring for `summary` into the buffer; the reason it could not, or None."""
        if summary == self.summary:
            return None
        new = self.slot.render(summary)
        for _ in range(MAX_ATTEMPTS):
            document = open_document(self.ls.workspace, self.uri)
            if document is None:
                return "the document was closed"
            source, version, serial = document.source, document.version, document.serial
            start = self.slot.locate(source)
            if start is None:
                return "the function changed while its docstring was being written"
            edit = self.slot.edit(document, start, new)
            try:
                result = await self._apply(edit.text_edit, version)
            except TimeoutError:
                return f"the editor did not answer the edit request within {APPLY_TIMEOUT_S:g} s"
            if result.applied:
                reason = await self._landed(serial, edit, new)
                if reason is None:
                    self.summary = summary
                    self.edits += 1
                return reason
            if not await self._moved_on(serial):  # rejected, and not because the document moved on meanwhile
                break
        return "the editor rejected the edit"

    async def _apply(self, edit: types.TextEdit, version: int | None) -> types.ApplyWorkspaceEditResult:
        """Send one edit; TimeoutError when the client does not answer in time."""
        params = types.ApplyWorkspaceEditParams(edit=self._workspace_edit(edit, version), label=EDIT_LABEL)
        return await asyncio.wait_for(self.ls.workspace_apply_edit_async(params), APPLY_TIMEOUT_S)

    def _workspace_edit(self, edit: types.TextEdit, version: int | None) -> types.WorkspaceEdit:
        """A versioned document edit when the client supports them, else a plain change."""
        if self.versioned and version is not None:
            document = types.OptionalVersionedTextDocumentIdentifier(uri=self.uri, version=version)
            return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(text_document=document, edits=[edit])])
        return types.WorkspaceEdit(changes={self.uri: [edit]})

    async def _landed(self, serial: int, edit: _Edit, new: str) -> str | None:
        """After the client said it applied `edit` (computed after change number `serial`): wait for
        its didChange and check where it landed; a misplaced edit is taken out again. The reason it
        failed, or None."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        while True:
            document = open_document(self.ls.workspace, self.uri)
            if document is None:
                return "the document was closed"
            change = _find_change(document, serial, edit)
            if change is not None:
                intended = _follow(document, edit.start, serial, change.serial - 1)
                if intended != change.start:
                    return await self._take_out(change)
                self.slot.content = new
                self.slot.start = _follow(document, self.slot.start, serial) or self.slot.start
                return None
            if document.serial > serial and (start := self.slot.locate(document.source, new)) is not None:
                self.slot.content, self.slot.start = new, start  # reported some other way (e.g. the whole text)
                return None
            if loop.time() > deadline:
                return "the editor said it applied the edit, but the document does not show it"
            await asyncio.sleep(0.005)

    async def _take_out(self, change: AppliedChange) -> str:
        """Undo a server edit that the editor applied in the wrong place (the user typed meanwhile)."""
        document = open_document(self.ls.workspace, self.uri)
        where = _follow(document, change.start, change.serial) if document is not None else None
        inserted = change.inserted_text or ""
        if where is None or change.removed_text is None or document.source[where : where + len(inserted)] != inserted:
            return "the editor put the docstring in the wrong place (the document changed meanwhile); undo that edit"
        line = document.position_at(where).line + 1
        undo = _Edit(types.TextEdit(range=types.Range(start=document.position_at(where), end=document.position_at(where + len(inserted))),
                                    new_text=change.removed_text), where, len(inserted))
        serial = document.serial
        try:
            result = await self._apply(undo.text_edit, document.version)
        except TimeoutError:
            result = types.ApplyWorkspaceEditResult(applied=False)
        if result.applied and await self._landed_undo(serial, undo):
            return "the editor put the docstring in the wrong place (the document changed meanwhile); it was taken out again"
        return f"the editor put the docstring in the wrong place, at line {line}; undo that edit"

    async def _landed_undo(self, serial: int, undo: _Edit) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        while loop.time() <= deadline:
            document = open_document(self.ls.workspace, self.uri)
            if document is None:
                return False
            change = _find_change(document, serial, undo)
            if change is not None:
                return _follow(document, undo.start, serial, change.serial - 1) == change.start
            await asyncio.sleep(0.005)
        return False

    async def _moved_on(self, serial: int) -> bool:
        """Wait until the document has changed since change number `serial` (False: not in time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        while True:
            document = open_document(self.ls.workspace, self.uri)
            if document is None:
                return False
            if document.serial != serial:
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
    units) of the open document `uri`, streamed into the buffer when the client takes versioned edits."""
    document = open_document(ls.workspace, uri)
    snapshot = copy.copy(document)  # as parsed, while the parse runs off the event loop
    info = await asyncio.to_thread(function_at, snapshot.source, language, line, character) if document is not None and language else None
    if info is None:
        missing = "no function at the position" if language else "docstrings are off or unsupported for this document"
        return DocstringResult(False, "", missing)
    writer = _Writer(ls, uri, _Slot(snapshot, info))
    feed = _Feed(asyncio.get_running_loop())
    progress = await _Progress.begin(ls, f"Writing the docstring of {info.name or 'the function'}")
    progress.on_cancel(feed.cancel)
    summarizing = asyncio.ensure_future(summarizer.summary(info, feed.push))
    summarizing.add_done_callback(lambda task: _finish(feed, task))
    reason: str | None = None
    try:
        while reason is None and (text := await feed.next()) is not None:
            if writer.versioned:
                reason = await writer.show(text)
            progress.report(writer.summary if writer.versioned else text)
        if reason is None and feed.cancelled:
            reason = CANCELLED
        if reason is None:
            try:
                summary = await summarizing
            except ModelUnavailable as exc:
                reason = str(exc)
            else:
                reason = await writer.show(summary) if summary else "the model wrote no summary"
    finally:
        if not summarizing.done():
            summarizing.cancel()
        progress.end(reason or "Done")
    if reason is not None and reason != CANCELLED:
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"codet5-lsp: {reason}"))
    return DocstringResult(writer.edits > 0, writer.summary, reason)
