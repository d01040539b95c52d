"""LSP wiring: the lifecycle notifications, and each request kind of `lsp_server.requests`
registered with its options (its concurrency rules are applied by the session)."""

from __future__ import annotations

import asyncio
from typing import Any

from lsprotocol import types

from .config import Settings
from .model_host import ModelHost
from .protocol import CURSOR_NOTIFICATION, Codet5Protocol
from .requests import code_action, commands, completion, hover, inline_completion
from .session import Codet5Server

TOKEN_OPTION = "token"  # initializationOptions key a daemon's token comes in; no setting
# How long `shutdown` lets the requests it cancels send their answers (a generation stops at its
# next token, a docstring edit waits for the client's reply to applyEdit: this bounds that wait).
SHUTDOWN_GRACE_S = 2.0
REQUESTS = (inline_completion, completion, hover, code_action)

__all__ = ["Codet5Server", "TOKEN_OPTION", "create_server"]


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

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: Codet5Server, params: types.DidOpenTextDocumentParams) -> None:
        ls.moved(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: Codet5Server, params: types.DidChangeTextDocumentParams) -> None:
        changes = params.content_changes
        ls.edited(params.text_document.uri, ranged=bool(changes) and isinstance(changes[-1], types.TextDocumentContentChangePartial))

    @server.feature(CURSOR_NOTIFICATION)
    def cursor_moved(ls: Codet5Server, params: types.TextDocumentPositionParams) -> None:
        ls.cursor_reported(params)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: Codet5Server, params: types.DidCloseTextDocumentParams) -> None:
        ls.forget(params.text_document.uri)

    for kind in REQUESTS:
        server.feature(kind.METHOD, kind.OPTIONS)(kind.handle)
    for name, command in commands.COMMANDS.items():
        server.command(name)(command)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: Codet5Server, *args: Any) -> None:
        ls.close()
        await ls.protocol.end_requests_in_flight(SHUTDOWN_GRACE_S)

    return server

