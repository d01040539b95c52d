"""JSON-RPC hardening on top of pygls: every request gets a response, even a malformed one.

pygls raises while deserializing a request whose params do not match the LSP types and then
drops the message, leaving the client waiting forever; here such a request is answered with
InvalidParams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol, lsp_method

from .documents import LspWorkspace


@dataclass(frozen=True)
class _RejectedRequest:
    id: Any
    method: str
    reason: str


class Codet5Protocol(LanguageServerProtocol):
    """The LSP protocol with a response for requests that fail to deserialize, and documents
    whose lines and positions follow LSP."""

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Any:
        result = yield from super().lsp_initialize(params)
        self._workspace = LspWorkspace.like(self._workspace)
        return result

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and isinstance(data.get("method"), str):
                cause = exc.__cause__ or exc
                return _RejectedRequest(data["id"], data["method"], str(cause).splitlines()[0] if str(cause) else type(cause).__name__)
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _RejectedRequest):
            error = JsonRpcInvalidParams(f"invalid params for {message.method}: {message.reason}")
            self._send_response(message.id, error=error.to_response_error())
            return
        super().handle_message(message)
