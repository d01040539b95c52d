"""One TCP daemon shared by several editors: a session per connection, one model host for all.

pygls's own `start_tcp` serves one client (every connection shares one protocol object and the
server stops when that client leaves), so the daemon runs its own accept loop.

With a token (`--token-file` or `$CODET5_LSP_TOKEN`), a connection is served only after an
`initialize` whose `initializationOptions.token` matches; anything else gets an error (if it
is a request) and the connection is closed.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.io_ import run_async
from pygls.exceptions import JsonRpcInvalidRequest
from pygls.protocol import lsp_method

from .config import Settings
from .model_host import ModelHost
from .protocol import Codet5Protocol
from .server import TOKEN_OPTION, create_server

log = logging.getLogger(__name__)
TOKEN_ENV = "CODET5_LSP_TOKEN"


class SessionProtocol(Codet5Protocol):
    """A daemon session: `exit` ends this connection, not the process; with a `token`, nothing
    is served before an `initialize` that carries it."""

    token: str | None = None
    _admitted = False

    def handle_message(self, message: Any) -> None:
        if self.token is not None and not self._admitted:
            if getattr(message, "method", None) != types.INITIALIZE or not hasattr(message, "id") or not self._carries_token(message):
                self._refuse(message)
                return
            self._admitted = True
        super().handle_message(message)

    def _carries_token(self, message: Any) -> bool:
        options = getattr(getattr(message, "params", None), "initialization_options", None)  # None: params did not parse
        sent = options.get(TOKEN_OPTION) if isinstance(options, dict) else None
        return isinstance(sent, str) and hmac.compare_digest(sent.encode(), self.token.encode())

    def _refuse(self, message: Any) -> None:
        """Answer a request with an error that says what is missing, then close the connection."""
        if hasattr(message, "id") and getattr(message, "method", None) is not None:
            error = JsonRpcInvalidRequest(
                f"codet5-lsp: this daemon needs its token: send it as initializationOptions.{TOKEN_OPTION} in initialize",
                data={"retry": False})
            self._send_response(message.id, error=error.to_response_error())
        log.warning("refused a client without the daemon's token")
        self._server.shutdown()
        if self.writer is not None:
            self.writer.close()

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:
        self._server.shutdown()
        if self.writer is not None:
            self.writer.close()


def check_bind_address(host: str, allow_remote: bool) -> None:
    """Refuse to listen beyond this machine unless the user said so explicitly."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise SystemExit(
            f"codet5-lsp: refusing to listen on {host}: other machines could use this server. "
            "Pass --allow-remote to do it anyway."
        )


async def serve(
    host: str, port: int, model_host: ModelHost, settings: Settings, on_listening: Callable[[int], None] | None = None,
    token: str | None = None,
) -> None:
    """Accept LSP clients on host:port until cancelled; each gets its own session, only after
    sending `token` when one is given."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server = create_server(model_host, pinned=settings, protocol_cls=SessionProtocol)
        server.protocol.token = token
        server._stop_event = threading.Event()
        server.protocol.set_writer(writer)  # type: ignore[arg-type]
        peer = writer.get_extra_info("peername")
        log.info("client connected: %s", peer)
        try:
            await run_async(
                stop_event=server._stop_event, reader=reader, protocol=server.protocol,
                logger=log, error_handler=server.report_server_error,
            )
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.info("client %s dropped: %s", peer, exc)
        finally:
            server.close()
            writer.close()
            log.info("client disconnected: %s", peer)

    listener = await asyncio.start_server(session, host, port)
    bound = listener.sockets[0].getsockname()[1]
    print(f"codet5-lsp: listening on {host}:{bound}", file=sys.stderr, flush=True)
    if on_listening:
        on_listening(bound)
    model_host.ensure(settings)
    async with listener:
        await listener.serve_forever()
