"""JSON-RPC hardening on top of pygls: every request gets a response, even a malformed one.

pygls raises while deserializing a request whose params do not match the LSP types and then
drops the message, leaving the client waiting forever; here such a request is answered with
InvalidParams. pygls also drops, without a response, bodies that are JSON but no JSON-RPC 2.0
message (an array, an object without `jsonrpc`, a method that is not a string), requests that
arrive before `initialize` and requests that arrive after `shutdown`; here they get
InvalidRequest, ServerNotInitialized and InvalidRequest, as JSON-RPC and LSP ask.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import attrs
import cattrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest, JsonRpcServerNotInitialized
from pygls.protocol import JsonRPCProtocol, LanguageServerProtocol, lsp_method
from pygls.workspace import TextDocument

from .documents import LspWorkspace, open_document

log = logging.getLogger(__name__)
_RECEIVED: ContextVar[tuple[str, TextDocument] | None] = ContextVar("received_document", default=None)
_REQUEST_ID: ContextVar[Any] = ContextVar("request_id", default=None)  # the request a handler answers


CURSOR_NOTIFICATION = "codet5/cursor"  # from the client: where the user's cursor is


@attrs.define
class CursorNotification:
    """`codet5/cursor`: the user's cursor is at `position` in the document (it was opened,
    focused or clicked); the server may prepare the prompt there while the editor is quiet."""

    params: types.TextDocumentPositionParams
    method: str = CURSOR_NOTIFICATION
    jsonrpc: str = "2.0"


@dataclass(frozen=True)
class _RejectedRequest:
    id: Any
    method: str
    reason: str


class Codet5Protocol(LanguageServerProtocol):
    """The LSP protocol with a response for every request, documents whose lines and positions
    follow LSP, and request handlers that see their document as the request found it."""

    def _execute_handler(self, msg_id: Any, handler: Any, callback: Any, args: Any = None, kwargs: Any = None) -> None:
        """Forget each handler's future once it is done.

        pygls files the future of every step of its generator handlers (didOpen, didChange,
        didClose, ...) under a fresh id and never removes it: a session kept one future per
        notification for its whole life, the daemon's main growth under editors typing for
        minutes (a stdio server's too). Request futures were removed when answered, as they still are.
        """

        def forget(future: Any) -> None:
            if self._request_futures.get(msg_id) is future:
                del self._request_futures[msg_id]
            callback(future)

        super()._execute_handler(msg_id, handler, forget, args, kwargs)

    async def end_requests_in_flight(self, grace_s: float) -> None:
        """Cancel every request still running (but the one being handled) and give them together
        up to `grace_s` seconds to send their answers (a result, or RequestCancelled), so that each
        goes out before the answer to `shutdown`: a client that quits never waits for one."""
        own = (asyncio.current_task(), self._request_futures.get(_REQUEST_ID.get()))
        running = [future for future in self._request_futures.values() if future not in own and not future.done()]
        for future in running:
            future.cancel()
        if running:
            await asyncio.wait([asyncio.wrap_future(f) if isinstance(f, concurrent.futures.Future) else f for f in running],
                               timeout=grace_s)
            await asyncio.sleep(0)  # the answers are sent by done callbacks, queued behind the wait's own

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Any:
        result = yield from super().lsp_initialize(params)
        self._workspace = LspWorkspace.like(self._workspace)
        return result

    def get_message_type(self, method: str) -> Any:
        return CursorNotification if method == CURSOR_NOTIFICATION else super().get_message_type(method)

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" in data and "method" in data and "params" not in data:
            data = {**data, "params": None}  # JSON-RPC lets params be left out
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "id" in data and isinstance(data.get("method"), str):
                return _RejectedRequest(_carried_id(data), data["method"], _reason(exc.__cause__ or exc))
            # Not a request, or an object nested in one (this hook sees every JSON object):
            # kept as it is, so that a top-level one reaches handle_message and is judged there.
            return data

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _RejectedRequest):
            self._send_response(message.id, error=JsonRpcInvalidParams(f"invalid params for {message.method}: {message.reason}").to_response_error())
            return
        if isinstance(message, dict) and "id" not in message and isinstance(message.get("method"), str):
            log.warning("dropped notification %s: its params do not match the LSP types", message["method"])
            return
        method = getattr(message, "method", None)
        is_request = hasattr(message, "id") and method is not None
        if not hasattr(message, "jsonrpc") or (is_request and not _valid_request(message)):
            self._send_response(_carried_id(message), error=JsonRpcInvalidRequest("not a JSON-RPC 2.0 message").to_response_error())
            return
        if is_request and method != types.INITIALIZE and self._workspace is None:
            error = JsonRpcServerNotInitialized(f"{method}: the server is not initialized (send initialize first)")
            self._send_response(message.id, error=error.to_response_error())
            return
        if is_request and self._shutdown:
            self._send_response(message.id, error=JsonRpcInvalidRequest(f"{method}: the server is shutting down").to_response_error())
            return
        if method is not None and not is_request and method != types.EXIT and self._workspace is None:
            return  # LSP: notifications before initialize are dropped
        super().handle_message(message)

    def _handle_request(self, msg_id: Any, method_name: str, params: Any) -> None:
        # An async handler starts only after the messages behind its request (didChange,
        # didClose) may have been applied: keep the document as the request found it.
        uri = getattr(getattr(params, "text_document", None), "uri", None)
        document = open_document(self._workspace, uri) if isinstance(uri, str) and self._workspace is not None else None
        _RECEIVED.set(None if document is None else (uri, copy.copy(document)))
        _REQUEST_ID.set(msg_id)
        super()._handle_request(msg_id, method_name, params)

    def _send_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        if msg_id is not None:
            super()._send_response(msg_id, result, error)
            return
        # pygls would leave the id out; JSON-RPC wants `"id": null` when the request's id is unknown.
        outcome = {"error": self._converter.unstructure(error)} if error is not None else {"result": self._converter.unstructure(result)}
        self._send_data({"jsonrpc": self.VERSION, "id": None, **outcome})


def _reason(error: BaseException) -> str:
    """What was wrong with a message's params, e.g. `expected int @ $.params.position.line`."""
    if isinstance(error, cattrs.BaseValidationError):
        return "; ".join(message.replace("invalid value for type, ", "") for message in cattrs.transform_error(error))
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def document_at_receipt(uri: str) -> TextDocument | None:
    """The document `uri` as it was when the request being handled arrived (None if it was not open then)."""
    received = _RECEIVED.get()
    return received[1] if received is not None and received[0] == uri else None


def _valid_request(message: Any) -> bool:
    return isinstance(message.method, str) and message.jsonrpc == JsonRPCProtocol.VERSION and (
        message.id is None or _carried_id(message) is not None)


def _carried_id(message: Any) -> Any:
    """The id an invalid message carries, if it is one JSON-RPC allows (a string or an integer), else None."""
    carried = message.get("id") if isinstance(message, dict) else getattr(message, "id", None)
    return carried if isinstance(carried, (str, int)) and not isinstance(carried, bool) else None
