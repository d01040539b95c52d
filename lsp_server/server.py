"""LSP wiring: each handler is a few lines that delegate to the pipeline and the model host."""

from __future__ import annotations

import asyncio
import re
import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcParseError
from pygls.lsp.server import LanguageServer

from inference.openai_backend import RemoteModelError

from . import __version__
from .completion import CompletionPipeline, Suggestion
from .config import Settings, parse_settings, settings_to_json
from .documents import LspTextDocument, open_document
from .docstring import (
    DOCSTRING_ACTION_KIND,
    GENERATE_DOCSTRING_COMMAND,
    Summarizer,
    docstring_actions,
    function_hover,
    write_docstring,
)
from .load_progress import LoadProgress
from .protocol import Codet5Protocol, document_at_receipt
from .model_host import HostStatus, JobStopped, ModelHost, ModelState, ModelUnavailable
from .no_suggestion import NoSuggestion, NoSuggestionLog
from .syntax import language_for
from .typeahead import TypeaheadCache

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "codet5/status"
STATUS_COMMAND = "codet5.status"
NO_SUGGESTION_NOTIFICATION = "codet5/noSuggestion"  # why a completion request got nothing
MAX_DOCUMENT_CHARS = 2_000_000  # larger documents stay in sync but get no model or syntax work
MAX_WORD_CHARS = 256  # the most of the word before the cursor a completion item repeats
TOKEN_OPTION = "token"  # initializationOptions key a daemon's token comes in; no setting
_WORD_BEFORE = re.compile(r"\w*\Z")


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was valid but the server could not serve it."""

    CODE = -32803
    MESSAGE = "Request failed"


class Codet5Server(LanguageServer):
    """One client's session: its settings, documents and in-flight requests; the model host may be shared."""

    def __init__(self, host: ModelHost, *, pinned: Settings | None = None, base: Settings | None = None,
                 protocol_cls: type[Codet5Protocol] = Codet5Protocol) -> None:
        super().__init__("codet5-lsp", __version__, protocol_cls=protocol_cls)
        self.host = host
        self.pinned = pinned  # a daemon's model settings; clients cannot change them
        self.settings = pinned or base or Settings()
        self.pipeline = CompletionPipeline(host, TypeaheadCache())
        self.summarizer = Summarizer(host)
        self.latest: dict[str, asyncio.Task] = {}
        self.no_suggestions = NoSuggestionLog()
        self._load_progress: LoadProgress | None = None
        self._unsubscribe = lambda: None

    # -- settings and status ---------------------------------------------------------------
    def apply_settings(self, raw: Any, load: bool = True) -> None:
        """Validate client settings, report what was rejected, and (re)load the model if needed."""
        settings, errors = parse_settings(raw, self.settings)
        if self.pinned is not None and (settings.model_key(), settings.summary_model) != (self.pinned.model_key(), self.pinned.summary_model):
            errors.append("this daemon serves a model chosen on its command line; model settings from the editor are ignored")
            settings = parse_settings(settings_to_json(self.pinned), settings)[0]
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
        self.protocol.notify(STATUS_NOTIFICATION, status_json(status))
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

    def document(self, uri: str) -> LspTextDocument | None:
        """The open document `uri`: as the request being handled found it, else as it is now."""
        return document_at_receipt(uri) or open_document(self.workspace, uri)

    def place(self, uri: str, position: types.Position) -> tuple[LspTextDocument, str | None, int, types.Position]:
        """(the open document, its grammar when it is supported and enabled and the document is
        not too large, the position's character index in its line, the position clamped to its line)."""
        document = self.document(uri)
        if document is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)")
        character, position = cursor(document, position)
        enabled = self.settings.language_enabled(document.language_id) and len(document.source) <= MAX_DOCUMENT_CHARS
        return document, language_for(document.language_id, uri) if enabled else None, character, position

    # -- completion ------------------------------------------------------------------------
    def no_suggestion(self, reason: NoSuggestion, uri: str, position: types.Position) -> None:
        """Record why a request got nothing; tell the client (`codet5/noSuggestion`, and `$/logTrace`
        when it asked for traces) and the debug log."""
        event = self.no_suggestions.record(reason, uri, position.line, position.character)
        log.debug("no suggestion at %s:%d:%d: %s", uri, position.line, position.character, reason.value)
        self.protocol.notify(NO_SUGGESTION_NOTIFICATION, event.to_json())
        if self.protocol.trace in (types.TraceValue.Messages, types.TraceValue.Verbose):
            self.log_trace(types.LogTraceParams(
                message=f"no suggestion at {uri}:{position.line}:{position.character}: {reason.value}",
                verbose=reason.description if self.protocol.trace == types.TraceValue.Verbose else None))

    async def suggest(self, uri: str, position: types.Position) -> tuple[Suggestion | None, types.Position]:
        """The suggestion at a client position, and that position clamped to its line.

        Latest request per document wins: an older one still running gets None. Every None is
        recorded with its reason (`no_suggestion`).
        """
        document = self.document(uri)
        if document is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)")
        character, position = cursor(document, position)
        reason = _refusal(self.settings, document.language_id, document.source)
        if reason is not None:
            self.no_suggestion(reason, uri, position)
            return None, position

        previous = self.latest.get(uri)
        if previous is not None and not previous.done():
            previous.cancel()
        task = asyncio.ensure_future(self.pipeline.suggest(
            uri, document.source, position.line, character, language_for(document.language_id, uri), self.settings,
            on_empty=lambda why: self.no_suggestion(why, uri, position)))
        self.latest[uri] = task
        try:
            return await asyncio.shield(task), position
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
            if self.latest.get(uri) is task:
                del self.latest[uri]


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


def cursor(document: LspTextDocument, position: types.Position) -> tuple[int, types.Position]:
    """(character index in the line's Python string, the position clamped to the line's end).

    LSP: a character past the end of its line means the end of the line. A line past the end
    of the document is an error. Costs no more on a long line than on a short one.
    """
    count = document.line_count
    if position.line < 0 or position.character < 0 or position.line > count or (
        position.line == count and position.character > 0
    ):
        raise JsonRpcInvalidParams(f"position {position.line}:{position.character} is outside the document ({count} lines)")
    if position.line == count:  # the empty line after a final newline
        return 0, position
    start, end = document.line_span(position.line)
    clamped = types.Position(line=position.line, character=min(position.character, document.index.units(start, end)))
    return document.offset_at(clamped) - start, clamped


def status_json(status: HostStatus) -> dict[str, str]:
    return {
        "state": status.state.value, "model": status.model, "message": status.message,
        "device": status.device, "computeType": status.compute_type,
    }


def create_server(host: ModelHost, *, pinned: Settings | None = None, base: Settings | None = None,
                  protocol_cls: type[Codet5Protocol] = Codet5Protocol) -> Codet5Server:
    """A server with every feature registered, sharing `host`.

    `pinned` settings (a daemon's) cannot be changed by the client; `base` ones (from the
    command line) are the starting point the client's options are applied to.
    """
    server = Codet5Server(host, pinned=pinned, base=base, protocol_cls=protocol_cls)

    @server.feature(types.INITIALIZE)
    def initialize(ls: Codet5Server, params: types.InitializeParams) -> None:
        if params.trace is not None:  # pygls takes only $/setTrace
            ls.protocol.trace = params.trace
        options = params.initialization_options
        ls.apply_settings({k: v for k, v in options.items() if k != TOKEN_OPTION} if isinstance(options, dict) else options, load=False)

    @server.feature(types.INITIALIZED)
    def initialized(ls: Codet5Server, params: types.InitializedParams) -> None:
        # Status goes out only from here on: no server-to-client requests before initialized.
        ls.loop = asyncio.get_running_loop()
        ls._unsubscribe = ls.host.subscribe(ls.on_status)
        ls._publish_status(ls.host.status)
        ls.host.ensure(ls.settings)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: Codet5Server, params: types.DidChangeConfigurationParams) -> None:
        ls.apply_settings(params.settings)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: Codet5Server, params: types.DidCloseTextDocumentParams) -> None:
        ls.pipeline.cache.forget(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: Codet5Server, params: types.InlineCompletionParams) -> types.InlineCompletionList:
        suggestion, position = await ls.suggest(params.text_document.uri, params.position)
        if suggestion is None:
            return types.InlineCompletionList(items=[])
        here = types.Range(start=position, end=position)
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=suggestion.text, range=here)])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
    async def completion(ls: Codet5Server, params: types.CompletionParams) -> types.CompletionList:
        suggestion, position = await ls.suggest(params.text_document.uri, params.position)
        document = ls.document(params.text_document.uri)
        items = [] if suggestion is None or document is None else [completion_item(document, position, suggestion.text)]
        return types.CompletionList(is_incomplete=True, items=items)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: Codet5Server, params: types.HoverParams) -> types.Hover | None:
        document, language, character, position = ls.place(params.text_document.uri, params.position)
        return await function_hover(ls.summarizer, document.source, language, position.line, character) if language else None

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(code_action_kinds=[DOCSTRING_ACTION_KIND]))
    async def code_action(ls: Codet5Server, params: types.CodeActionParams) -> list[types.CodeAction]:
        document, language, character, position = ls.place(params.text_document.uri, params.range.start)
        return await asyncio.to_thread(docstring_actions, params.text_document.uri, document.source, language, position.line,
                                       character, position, params.context.only) if language else []

    @server.command(GENERATE_DOCSTRING_COMMAND)
    async def generate_docstring(ls: Codet5Server, uri: str, position: types.Position) -> dict[str, Any]:
        _, language, character, position = ls.place(uri, position)
        return (await write_docstring(ls, ls.summarizer, uri, language, position.line, character)).to_json()

    @server.command(STATUS_COMMAND)
    def status(ls: Codet5Server, *args: Any) -> dict[str, Any]:
        return {**status_json(ls.host.status), "settings": settings_to_json(ls.settings),
                "cache": {"hits": ls.pipeline.cache.hits, "misses": ls.pipeline.cache.misses},
                "summaryCache": ls.summarizer.cache.stats(), "noSuggestion": ls.no_suggestions.to_json()}

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: Codet5Server, *args: Any) -> None:
        ls.close()

    return server


def completion_item(document: LspTextDocument, position: types.Position, text: str) -> types.CompletionItem:
    """A completion item that inserts the suggestion, matched against the word being typed.

    Clients filter items by the word before the cursor, so the edit starts at that word and
    repeats it (at most MAX_WORD_CHARS of it), and the label is the suggestion's first line.
    """
    character, position = cursor(document, position)
    line_start = document.line_span(position.line)[0]
    offset = line_start + character
    word = _WORD_BEFORE.search(document.source, max(line_start, offset - MAX_WORD_CHARS), offset).group(0)
    start = document.position_at(offset - len(word))
    return types.CompletionItem(
        label=(word + text).split("\n", 1)[0].strip() or (word + text).strip(),
        kind=types.CompletionItemKind.Text,
        detail="codet5-lsp",
        filter_text=word + text,
        text_edit=types.TextEdit(range=types.Range(start=start, end=position), new_text=word + text),
        insert_text_format=types.InsertTextFormat.PlainText,
    )
