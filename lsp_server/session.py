"""One client's session: its settings, documents and in-flight requests, and the concurrency
rules of `lsp_server.requests` applied (snapshot, latest wins, the job host's priority); the
speculative next suggestion computed while the editor is idle, and prompts computed ahead
(prewarm): the one at the user's cursor once the editor has been quiet for a moment, a typed
request's while it waits out its debounce."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcParseError
from pygls.lsp.server import LanguageServer

from inference.completion.no_suggestion import NoSuggestion, NoSuggestionLog
from inference.completion.other_files import OtherFile
from inference.completion.pipeline import Ahead, CompletionPipeline, CompletionRequest, Suggestion
from inference.completion.typeahead import TypeaheadCache
from inference.engines.openai_backend import RemoteModelError
from inference.syntax import language_for

from . import __version__
from .config import SessionLimits, Settings, parse_settings, settings_to_json
from .documents import LspTextDocument, open_document
from .docstring import Summarizer
from .load_progress import LoadProgress
from .model_host import (
    HostStatus,
    HostWorker,
    JobStopped,
    ModelHost,
    ModelState,
    ModelUnavailable,
)
from .positions import cursor
from .protocol import CURSOR_NOTIFICATION, Codet5Protocol, document_at_receipt
from .requests.rules import PRIORITY_PREWARM, PRIORITY_SPECULATIVE, RequestRules

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "codet5/status"
NO_SUGGESTION_NOTIFICATION = "codet5/noSuggestion"  # why a completion request got nothing
MAX_DOCUMENT_CHARS = 2_000_000  # larger documents stay in sync but get no model or syntax work
MAX_OTHER_FILES = 16  # the most recently used open documents a completion may take context from
# The editor quiet this long (no edit, request, open, close or cursor report) before the prompt at the
# user's cursor is computed ahead: a burst of events (a file opened with others, typing) leads to one.
PREWARM_IDLE_S = 0.4


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was valid but the server could not serve it."""

    CODE = -32803
    MESSAGE = "Request failed"


@dataclass
class Speculation:
    """The next suggestion being computed for one document as it reads once a suggestion is accepted."""

    text: str  # the document with the suggestion inserted
    start: int  # where the suggestion starts in it
    offset: int  # the cursor after it
    task: asyncio.Task
    cancelled: threading.Event

    def leads_to(self, text: str, offset: int | None = None) -> bool:
        """Whether `text` (with the cursor at `offset`, if given) is the document with the
        suggestion partly typed: on the way to `self.text`, so the speculation stays useful."""
        tail = len(self.text) - self.offset
        typed = len(text) - tail
        return (self.start <= typed <= self.offset and text[typed:] == self.text[self.offset:]
                and self.text.startswith(text[:typed]) and offset in (None, typed))

    def cancel(self) -> None:
        self.cancelled.set()
        self.task.cancel()


class Codet5Server(LanguageServer):
    """One client's session: its settings, documents and in-flight requests; the model host may be shared."""

    def __init__(self, host: ModelHost, *, pinned: Settings | None = None, base: Settings | None = None,
                 protocol_cls: type[Codet5Protocol] = Codet5Protocol) -> None:
        super().__init__("codet5-lsp", __version__, protocol_cls=protocol_cls)
        self.host = host
        self.pinned = pinned  # a daemon's model settings; clients cannot change them
        self.settings = pinned or base or Settings()
        self.pipeline = CompletionPipeline(TypeaheadCache())
        self.summarizer = Summarizer(host)
        self.latest: dict[str, asyncio.Task] = {}
        self.requests: dict[str, int] = {}  # supersede key -> number of its latest request
        self.speculations: dict[str, Speculation] = {}
        # Open documents by last use (edit, completion, cursor report), most recent last, with where the
        # user was last seen in each (None: not yet).
        self.used: dict[str, types.Position | None] = {}
        self._activity = 0  # events of the editor so far: a prewarm started before the latest one stops
        self._prewarm_timer: asyncio.TimerHandle | None = None
        self._warmed: tuple | None = None  # the last (uri, text, line, character, other files) whose prompt ran
        self.last_prewarm: dict[str, Any] | None = None  # where the latest prewarm was (codet5.status)
        self.limits: SessionLimits | None = None  # a shared daemon's per-session limits
        self.stages: Counter[str] = Counter()  # pipeline stages reached ("speculative." for speculations)
        self.no_suggestions = NoSuggestionLog()
        self._load_progress: LoadProgress | None = None
        self._unsubscribe = lambda: None

    # -- settings and status ---------------------------------------------------------------
    def apply_settings(self, raw: Any, load: bool = True) -> None:
        """Validate client settings, report what was rejected, and (re)load the model if needed."""
        settings, errors = parse_settings(raw, self.settings)
        if self.pinned is not None and settings.host_key() != self.pinned.host_key():
            errors.append("this daemon serves a model chosen on its command line; model settings from the editor are ignored")
            settings = parse_settings(settings_to_json(self.pinned), settings)[0]
        if self.limits is not None:
            settings, lowered = self.limits.clamp(settings)
            errors.extend(lowered)
        self.settings = settings
        for error in errors:
            self.show(types.MessageType.Warning, f"codet5-lsp: {error}")
        if load:
            self.host.ensure(settings)

    def show(self, kind: types.MessageType, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def on_status(self, status: HostStatus) -> None:
        """Forward a host status change to this client (called from any thread)."""
        loop = getattr(self, "loop", None)
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._publish_status, status)

    def _publish_status(self, status: HostStatus) -> None:
        self.protocol.notify(STATUS_NOTIFICATION, status.to_json())
        self._report_progress(status)
        if status.state is ModelState.ERROR:
            self.show(types.MessageType.Error, f"codet5-lsp: {status.message}")

    def _report_progress(self, status: HostStatus) -> None:
        window = self.client_capabilities.window
        if window and window.work_done_progress:
            if self._load_progress is None:
                self._load_progress = LoadProgress(self.work_done_progress)
            self._load_progress.update(status.state is ModelState.LOADING, status.message)

    def report_server_error(self, error: Exception, source: Any) -> None:
        """A body that cannot be parsed (not JSON, not UTF-8, nested too deep) gets a ParseError
        response (id null), as JSON-RPC asks."""
        if source is JsonRpcException and isinstance(error, (ValueError, RecursionError)):
            self.protocol._send_response(None, error=JsonRpcParseError(f"invalid JSON: {error}").to_response_error())
            return
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)

    def close(self) -> None:
        self._unsubscribe()
        for task in self.latest.values():
            task.cancel()
        for speculation in self.speculations.values():
            speculation.cancel()
        if self._prewarm_timer is not None:
            self._prewarm_timer.cancel()
        self._activity += 1

    def edited(self, uri: str, ranged: bool = False) -> None:
        """A change to `uri` arrived (`ranged`: the last of its edits had a range, so the cursor is
        taken to be at the end of its text): a speculation for another text of it is dropped now."""
        document = open_document(self.workspace, uri)
        last = document.changes[-1] if ranged and document is not None and document.changes else None
        self.moved(uri, document.position_at(last.start + last.inserted) if last is not None else None)
        speculation = self.speculations.get(uri)
        if speculation is not None and (document is None or not speculation.leads_to(document.source)):
            del self.speculations[uri]
            speculation.cancel()

    def forget(self, uri: str) -> None:
        """`uri` was closed: its cached and speculative suggestions go."""
        self.pipeline.cache.forget(uri)
        self.used.pop(uri, None)
        self._quiet_then_prewarm()
        speculation = self.speculations.pop(uri, None)
        if speculation is not None:
            speculation.cancel()

    # -- prewarm ---------------------------------------------------------------------------
    def moved(self, uri: str, position: types.Position | None = None) -> None:
        """The user is in `uri` (at `position`, when known): it becomes the most recently used
        document, and once the editor has been quiet for PREWARM_IDLE_S its prompt at the last known
        cursor (without one: the end of the document) is computed into the model's prompt cache."""
        last = self.used.pop(uri, None)
        self.used[uri] = position if position is not None else last
        self._quiet_then_prewarm()

    def cursor_reported(self, params: types.TextDocumentPositionParams) -> None:
        """A `codet5/cursor` notification: the user's cursor is at `position` in `textDocument` (a
        document opened or focused, a click): `moved`. A position outside every open document is
        logged and dropped (a notification gets no error)."""
        uri, position = params.text_document.uri, params.position
        document = open_document(self.workspace, uri)
        if document is None or position.line > document.line_count:
            log.warning("dropped %s: %s:%d:%d is not in an open document", CURSOR_NOTIFICATION, uri,
                        position.line, position.character)
            return
        self.cursor_at(uri, position)

    def cursor_at(self, uri: str, position: types.Position) -> None:
        """The user's cursor is at `position` in `uri` (a cursor report, or a code action asked for
        at a bare cursor, as VS Code, Helix and others ask whenever the cursor rests): `moved`,
        unless it is where it was last seen in the document used last."""
        if next(reversed(self.used), None) != uri or self.used[uri] != position:
            self.moved(uri, position)

    def _quiet_then_prewarm(self) -> None:
        """An event of the editor: a prewarm under way stops at its next check, and the next one
        starts after PREWARM_IDLE_S without another."""
        self._activity += 1
        self._arm_prewarm()

    def _arm_prewarm(self) -> None:
        loop = getattr(self, "loop", None)
        if self._prewarm_timer is not None:
            self._prewarm_timer.cancel()
            self._prewarm_timer = None
        if loop is not None and not loop.is_closed() and self.settings.prewarm:
            self._prewarm_timer = loop.call_later(PREWARM_IDLE_S, self._prewarm)

    def _prewarm(self) -> None:
        """Compute, at the lowest priority, the prompt of the most recently used document at its
        cursor, unless that very prompt has run already. It stops at any event of the editor and
        whenever a more urgent job waits, and does not start while one does (another session's:
        then it is tried again once quiet, and continues from what it ran)."""
        self._prewarm_timer = None
        if any(not task.done() for task in self.latest.values()):
            self._arm_prewarm()  # a completion runs: it computes its prompt itself
            return
        if self.host.more_urgent_waiting(PRIORITY_PREWARM):
            self._arm_prewarm()  # another session's work waits (a shared daemon): it would stop before the model
            return
        uri = next(reversed(self.used), None)
        document = open_document(self.workspace, uri) if uri is not None else None
        if document is None or _refusal(self.settings, document.language_id, document.source) is not None:
            return
        end = types.Position(document.line_count, 0)
        try:
            character, position = cursor(document, self.used[uri] or end)
        except JsonRpcInvalidParams:  # lines were deleted below the last cursor seen
            character, position = cursor(document, end)
        request = self._request(uri, document, position.line, character)
        key = _warm_key(request)
        if key == self._warmed:
            return
        activity, host = self._activity, self.host
        self.last_prewarm = {"uri": uri, "line": position.line, "character": position.character}
        stopped = False

        def stale() -> bool:
            nonlocal stopped
            stopped = stopped or self._activity != activity or host.more_urgent_waiting(PRIORITY_PREWARM)
            return stopped

        def warmed(task: asyncio.Task) -> None:
            failed = task.cancelled() or task.exception() is not None
            if failed:
                _consume(task)
            elif not stopped:
                self._warmed = key
            if stopped and self._activity == activity:
                self._arm_prewarm()  # cut short by another session's work: go on once quiet again

        task = asyncio.ensure_future(self.pipeline.prewarm(
            request, HostWorker(host, PRIORITY_PREWARM, self), trace=lambda event: self._count("prewarm." + event.stage),
            stale=stale))
        task.add_done_callback(warmed)

    def _request(self, uri: str, document: LspTextDocument, line: int, character: int,
                 automatic: bool = False) -> CompletionRequest:
        """The pipeline's request at (line, character) of `document`, with this session's settings and other files."""
        return CompletionRequest(uri, document.source, line, character, language_for(document.language_id, uri),
                                 self.settings.completion_options(), automatic=automatic, other_files=self.other_files(uri))

    def other_files(self, uri: str) -> tuple[OtherFile, ...]:
        """The open documents besides `uri` that completions may take context from (the setting
        `otherFiles`; languages enabled, not too large), most recently used first."""
        if not self.settings.other_files:
            return ()
        opened = self.workspace.text_documents
        order = [*reversed(self.used), *(u for u in opened if u not in self.used)]
        files = []
        for other in order:
            document = opened.get(other)
            if other == uri or document is None or len(document.source) > MAX_DOCUMENT_CHARS:
                continue
            if self.settings.language_enabled(document.language_id):
                files.append(OtherFile(other, document.source))
            if len(files) == MAX_OTHER_FILES:
                break
        return tuple(files)

    def document(self, uri: str, rules: RequestRules) -> LspTextDocument | None:
        """The open document `uri`: as the request being handled found it when its kind runs on
        a snapshot (and the document was open then), else as it is now."""
        return (document_at_receipt(uri) if rules.snapshot else None) or open_document(self.workspace, uri)

    def place(self, uri: str, position: types.Position,
              rules: RequestRules) -> tuple[LspTextDocument, str | None, int, types.Position]:
        """(the open document, its grammar when it is supported and enabled and the document is
        not too large, the position's character index in its line, the position clamped to its line)."""
        document = self.document(uri, rules)
        if document is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)")
        character, position = cursor(document, position)
        enabled = self.settings.language_enabled(document.language_id) and len(document.source) <= MAX_DOCUMENT_CHARS
        return document, language_for(document.language_id, uri) if enabled else None, character, position

    # -- completion ------------------------------------------------------------------------
    def no_suggestion(self, reason: NoSuggestion, uri: str, position: types.Position) -> None:
        """Record why a request got nothing; tell the client (`codet5/noSuggestion`, and `$/logTrace`
        when it asked for traces) and the debug log. A superseded request is only counted: a newer one
        answers in its place, and while the user types it would be a message per keystroke that
        buries the reason that matters in the editor's status."""
        event = self.no_suggestions.record(reason, uri, position.line, position.character)
        log.debug("no suggestion at %s:%d:%d: %s", uri, position.line, position.character, reason.value)
        if reason is NoSuggestion.SUPERSEDED:
            return
        self.protocol.notify(NO_SUGGESTION_NOTIFICATION, event.to_json())
        if self.protocol.trace in (types.TraceValue.Messages, types.TraceValue.Verbose):
            self.log_trace(types.LogTraceParams(
                message=f"no suggestion at {uri}:{position.line}:{position.character}: {reason.value}",
                verbose=reason.description if self.protocol.trace == types.TraceValue.Verbose else None))

    async def suggest(self, uri: str, position: types.Position, rules: RequestRules,
                      automatic: bool = False) -> tuple[Suggestion | None, types.Position]:
        """The suggestion at a client position, and that position clamped to its line.

        When `rules` supersede, the latest request per document (per session, on a shared
        daemon) wins: an older one still running gets None, stopped at its next check. An
        `automatic` request (typing) is debounced (`_ahead`). A suggestion served starts the speculation of
        the next one. Every None is recorded with its reason (`no_suggestion`).
        """
        document = self.document(uri, rules)
        if document is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)")
        character, position = cursor(document, position)
        reason = _refusal(self.settings, document.language_id, document.source)
        if reason is not None:
            self.no_suggestion(reason, uri, position)
            return None, position

        self.moved(uri, position)
        request = self._request(uri, document, position.line, character, automatic)
        speculation = self._speculation_for(request)
        key = uri if self.limits is None else ""  # a shared daemon: one completion per session
        previous = self.latest.get(key) if rules.supersedes else None
        if previous is not None and not previous.done():
            previous.cancel()
        number = self.requests[key] = self.requests.get(key, 0) + 1
        assert rules.priority is not None
        task = asyncio.ensure_future(self._after(speculation, self.pipeline.suggest(
            request, HostWorker(self.host, rules.priority, self), on_empty=lambda why: self.no_suggestion(why, uri, position),
            trace=lambda event: self._count(event.stage), stale=(lambda: self.requests.get(key) != number) if rules.supersedes else lambda: False,
            ahead=self._ahead())))
        if rules.supersedes:
            self.latest[key] = task
        try:
            suggestion = await asyncio.shield(task)
            if suggestion is None or not suggestion.from_cache:
                self._warmed = _warm_key(request)  # its prompt ran: a prewarm of it would add nothing
            if suggestion is not None and rules.supersedes and self.settings.speculative:
                self._speculate(request, suggestion.text)
            return suggestion, position
        except (asyncio.CancelledError, JobStopped) as exc:
            task.cancel()
            loading = self.host.status.state is ModelState.LOADING
            self.no_suggestion(NoSuggestion.MODEL_LOADING if loading else NoSuggestion.SUPERSEDED, uri, position)
            if isinstance(exc, asyncio.CancelledError) and asyncio.current_task().cancelling():
                raise  # the client cancelled this request
            return None, position  # superseded by a newer request for the same document
        except (ModelUnavailable, RemoteModelError) as exc:
            self.no_suggestion(NoSuggestion.MODEL_UNAVAILABLE, uri, position)
            raise RequestFailed(str(exc)) from None
        finally:
            if self.latest.get(key) is task:
                del self.latest[key]

    def _ahead(self) -> Ahead | None:
        """With `prewarm` on, a typed request computes its prompt into the prompt cache while it
        waits out the debounce, at the prewarm's priority: it gives way to any more urgent job."""
        if not self.settings.prewarm:
            return None
        host = self.host
        return Ahead(HostWorker(host, PRIORITY_PREWARM, self), lambda: host.more_urgent_waiting(PRIORITY_PREWARM))

    def _count(self, stage: str) -> None:
        if "postprocess." not in stage:
            self.stages[stage] += 1

    def _speculation_for(self, request: CompletionRequest) -> Speculation | None:
        """The speculation computing exactly this request's document and cursor (the user
        accepted the suggestion), taken for the request to await; one that this request is no
        longer on the way to is dropped."""
        speculation = self.speculations.get(request.uri)
        if speculation is None:
            return None
        if (speculation.text, speculation.offset) == (request.text, request.offset):
            del self.speculations[request.uri]
            return speculation
        if not speculation.leads_to(request.text, request.offset):
            del self.speculations[request.uri]
            speculation.cancel()
        return None

    @staticmethod
    async def _after(speculation: Speculation | None, run: Coroutine[Any, Any, Suggestion | None]) -> Suggestion | None:
        """`run`, once `speculation` (if any) has finished: its result is in the cache then, and
        `run` serves it from there."""
        if speculation is not None:
            try:
                await asyncio.shield(speculation.task)
            except asyncio.CancelledError:
                speculation.cancel()
                run.close()
                raise
            except Exception:  # it stopped or failed: `run` computes the suggestion itself
                pass
        return await run

    def _speculate(self, request: CompletionRequest, suggestion: str) -> None:
        """Compute, at the lowest priority, the suggestion that follows `suggestion` once it is
        accepted, into the typed-ahead cache keyed by that document; it stops when a more urgent
        job waits or the document changes to anything else."""
        document = open_document(self.workspace, request.uri)
        if document is None or document.source != request.text:
            return  # the editor has moved on: the suggestion is not on screen
        accepted = request.accepted(suggestion)
        previous = self.speculations.get(request.uri)
        if previous is not None and (previous.text, previous.offset) == (accepted.text, accepted.offset):
            return  # typing the suggestion shown: the same speculation goes on
        if self.pipeline.cache.holds(request.uri, accepted.text[: accepted.offset], accepted.text[accepted.offset:]):
            return
        cancelled = threading.Event()
        host = self.host
        task = asyncio.ensure_future(self.pipeline.speculate(
            accepted, HostWorker(host, PRIORITY_SPECULATIVE, self),
            trace=lambda event: self._count("speculative." + event.stage), stale=lambda: cancelled.is_set() or host.more_urgent_waiting(PRIORITY_SPECULATIVE)))
        task.add_done_callback(_consume)
        if previous is not None:
            previous.cancel()
        self.speculations[request.uri] = Speculation(accepted.text, request.offset, accepted.offset, task, cancelled)


def _warm_key(request: CompletionRequest) -> tuple:
    """What makes a completion's prompt: two requests with the same key have the same prompt."""
    return request.uri, request.text, request.line, request.character, request.other_files


def _consume(task: asyncio.Task) -> None:
    """A speculation's outcome is only its cache entry: an error is logged, never raised."""
    if not task.cancelled() and isinstance(task.exception(), Exception) and not isinstance(task.exception(), JobStopped):
        log.debug("speculation failed: %s", task.exception())


def _refusal(settings: Settings, language_id: str | None, text: str) -> NoSuggestion | None:
    """Why a document gets no completions before the model is asked, or None."""
    if not settings.enabled:
        return NoSuggestion.COMPLETIONS_OFF
    if not settings.language_enabled(language_id):
        return NoSuggestion.LANGUAGE_DISABLED
    if len(text) > MAX_DOCUMENT_CHARS:
        return NoSuggestion.DOCUMENT_TOO_LARGE
    if "\x00" in text:
        return NoSuggestion.BINARY_DOCUMENT
    return None
