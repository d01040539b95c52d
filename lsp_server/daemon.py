"""One TCP daemon shared by several editors: a session per connection, one model host for all.

pygls's own `start_tcp` serves one client (every connection shares one protocol object and the
server stops when that client leaves), so the daemon runs its own accept loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.io_ import run_async
from pygls.protocol import lsp_method

from .config import Settings
from .model_host import ModelHost
from .protocol import Codet5Protocol
from .server import create_server

log = logging.getLogger(__name__)


class SessionProtocol(Codet5Protocol):
    """A daemon session: `exit` ends this connection, not the process."""

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
    host: str, port: int, model_host: ModelHost, settings: Settings, on_listening: Callable[[int], None] | None = None
) -> None:
    """Accept LSP clients on host:port until cancelled; each gets its own session."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server = create_server(model_host, pinned=settings, protocol_cls=SessionProtocol)
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
