"""LSP wiring: each handler is a few lines that delegate to the pipeline and the model host."""

from __future__ import annotations

import asyncio
import re
import logging
import uuid
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from . import __version__
from .completion import CompletionPipeline, Suggestion
from .config import Settings, parse_settings, settings_to_json
from .model_host import HostStatus, JobStopped, ModelHost, ModelState, ModelUnavailable
from .syntax import language_for
from .typeahead import TypeaheadCache

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "codet5/status"
STATUS_COMMAND = "codet5.status"
MAX_DOCUMENT_CHARS = 8_000_000  # larger documents get no completions
_WORD_BEFORE = re.compile(r"\w*\Z")


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was valid but the server could not serve it."""

    CODE = -32803
    MESSAGE = "Request failed"


class Codet5Server(LanguageServer):
    """One client's session: its settings, documents and in-flight requests; the model host may be shared."""

    def __init__(self, host: ModelHost, *, pinned: Settings | None = None, base: Settings | None = None,
                 protocol_cls: type[LanguageServerProtocol] = LanguageServerProtocol) -> None:
        super().__init__("codet5-lsp", __version__, protocol_cls=protocol_cls)
        self.host = host
        self.pinned = pinned  # a daemon's model settings; clients cannot change them
        self.settings = pinned or base or Settings()
        self.pipeline = CompletionPipeline(host, TypeaheadCache())
        self.latest: dict[str, asyncio.Task] = {}
        self._progress_token: str | None = None
        self._unsubscribe = lambda: None

    # -- settings and status ---------------------------------------------------------------
    def apply_settings(self, raw: Any) -> None:
        """Validate client settings, report what was rejected, and (re)load the model if needed."""
        settings, errors = parse_settings(raw, self.settings)
        if self.pinned is not None and settings.model_key() != self.pinned.model_key():
            errors.append("this daemon serves a model chosen on its command line; model settings from the editor are ignored")
            settings = parse_settings(settings_to_json(self.pinned), settings)[0]
        self.settings = settings
        for error in errors:
            self.show(types.MessageType.Warning, f"codet5-lsp: {error}")
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
        if not (window and window.work_done_progress):
            return
        progress = self.work_done_progress
        if status.state is ModelState.LOADING:
            if self._progress_token is None:
                self._progress_token = token = f"codet5-load-{uuid.uuid4().hex[:8]}"
                progress.create(token).add_done_callback(
                    lambda _: progress.begin(token, types.WorkDoneProgressBegin(title="codet5-lsp", message=status.message))
                )
            elif self._progress_token in progress.tokens:
                progress.report(self._progress_token, types.WorkDoneProgressReport(message=status.message))
        elif self._progress_token is not None:
            token, self._progress_token = self._progress_token, None
            if token in progress.tokens:
                progress.end(token, types.WorkDoneProgressEnd(message=status.message))

    def close(self) -> None:
        self._unsubscribe()
        for task in self.latest.values():
            task.cancel()

    # -- completion ------------------------------------------------------------------------
    async def suggest(self, uri: str, position: types.Position) -> Suggestion | None:
        """The suggestion at a client position; latest request per document wins."""
        document = self.workspace.text_documents.get(uri)
        if document is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)")
        if not self.settings.language_enabled(document.language_id):
            return None
        text = document.source
        if len(text) > MAX_DOCUMENT_CHARS or "\x00" in text:
            return None
        lines = document.lines
        if position.line < 0 or position.character < 0 or position.line > len(lines):
            raise JsonRpcInvalidParams(f"position {position.line}:{position.character} is outside {uri} ({len(lines)} lines)")
        # LSP: a character past the end of its line means the end of the line.
        line_text = lines[position.line].rstrip("\r\n") if position.line < len(lines) else ""
        server_pos = document.position_codec.position_from_client_units(lines, position) if position.line < len(lines) else position
        character = min(server_pos.character, len(line_text))

        previous = self.latest.get(uri)
        if previous is not None and not previous.done():
            previous.cancel()
        task = asyncio.ensure_future(
            self.pipeline.suggest(uri, text, position.line, character, language_for(document.language_id, uri), self.settings)
        )
        self.latest[uri] = task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            if asyncio.current_task().cancelling():  # the client cancelled this request
                raise
            return None  # superseded by a newer request for the same document
        except JobStopped:
            return None
        except ModelUnavailable as exc:
            raise RequestFailed(str(exc)) from None
        finally:
            if self.latest.get(uri) is task:
                del self.latest[uri]


def status_json(status: HostStatus) -> dict[str, str]:
    return {
        "state": status.state.value, "model": status.model, "message": status.message,
        "device": status.device, "computeType": status.compute_type,
    }


def create_server(host: ModelHost, *, pinned: Settings | None = None, base: Settings | None = None,
                  protocol_cls: type[LanguageServerProtocol] = LanguageServerProtocol) -> Codet5Server:
    """A server with every feature registered, sharing `host`.

    `pinned` settings (a daemon's) cannot be changed by the client; `base` ones (from the
    command line) are the starting point the client's options are applied to.
    """
    server = Codet5Server(host, pinned=pinned, base=base, protocol_cls=protocol_cls)

    @server.feature(types.INITIALIZE)
    def initialize(ls: Codet5Server, params: types.InitializeParams) -> None:
        ls._unsubscribe = ls.host.subscribe(ls.on_status)
        ls.loop = asyncio.get_running_loop()
        ls.apply_settings(params.initialization_options)

    @server.feature(types.INITIALIZED)
    def initialized(ls: Codet5Server, params: types.InitializedParams) -> None:
        ls._publish_status(ls.host.status)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: Codet5Server, params: types.DidChangeConfigurationParams) -> None:
        ls.apply_settings(params.settings)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: Codet5Server, params: types.DidCloseTextDocumentParams) -> None:
        ls.pipeline.cache.forget(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: Codet5Server, params: types.InlineCompletionParams) -> types.InlineCompletionList:
        suggestion = await ls.suggest(params.text_document.uri, params.position)
        if suggestion is None:
            return types.InlineCompletionList(items=[])
        here = types.Range(start=params.position, end=params.position)
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=suggestion.text, range=here)])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
    async def completion(ls: Codet5Server, params: types.CompletionParams) -> types.CompletionList:
        suggestion = await ls.suggest(params.text_document.uri, params.position)
        items = [] if suggestion is None else [completion_item(ls, params, suggestion.text)]
        return types.CompletionList(is_incomplete=True, items=items)

    @server.command(STATUS_COMMAND)
    def status(ls: Codet5Server, *args: Any) -> dict[str, Any]:
        return {**status_json(ls.host.status), "settings": settings_to_json(ls.settings),
                "cache": {"hits": ls.pipeline.cache.hits, "misses": ls.pipeline.cache.misses}}

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: Codet5Server, *args: Any) -> None:
        ls.close()

    return server


def completion_item(ls: Codet5Server, params: types.CompletionParams, text: str) -> types.CompletionItem:
    """A completion item that inserts the suggestion, matched against the word being typed.

    Clients filter items by the word before the cursor, so the edit starts at that word and
    repeats it, and the label is the suggestion's first line.
    """
    document = ls.workspace.get_text_document(params.text_document.uri)
    position = params.position
    line = document.lines[position.line] if position.line < len(document.lines) else ""
    server_char = document.position_codec.position_from_client_units(document.lines, position).character if line else 0
    before = line[:server_char]
    word = _WORD_BEFORE.search(before).group(0)
    word_len = len(word)
    start = document.position_codec.position_to_client_units(
        document.lines, types.Position(line=position.line, character=server_char - word_len)
    ) if line else position
    first_line = (word + text).split("\n", 1)[0]
    return types.CompletionItem(
        label=first_line.strip() or (word + text).strip(),
        kind=types.CompletionItemKind.Text,
        detail="codet5-lsp",
        filter_text=word + text,
        text_edit=types.TextEdit(range=types.Range(start=start, end=position), new_text=word + text),
        insert_text_format=types.InsertTextFormat.PlainText,
    )
