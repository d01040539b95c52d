"""One TCP daemon shared by several editors: a session per connection, one model host for all.

pygls's own `start_tcp` serves one client (every connection shares one protocol object and the
server stops when that client leaves), so the daemon runs its own accept loop.

With a token (`--token-file` or `$CODET5_LSP_TOKEN`), a connection is served only after an
`initialize` whose `initializationOptions.token` matches; anything else gets an error (if it
is a request) and the connection is closed. The token is checked on the raw message, before
any other code reads it.

What a connection may cost before it is initialized is bounded: `Limits.handshake_bytes` and
`Limits.handshake_timeout` seconds, after which it is closed; at most `Limits.connections`
are open at once. A client that does not read its replies is not read either (back-pressure);
one whose unread replies pass `Limits.write_buffer_bytes`, or stay unread for
`Limits.drain_timeout` seconds, is disconnected. What happens before initialize is logged
through one rate-limited budget, so hostile connections cannot grow the log without end.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidRequest
from pygls.protocol import lsp_method

from .config import SessionLimits, Settings
from .framing import Body, FramingError, TooLarge
from .model_host import ModelHost
from .protocol import Codet5Protocol
from .server import TOKEN_OPTION, create_server
from .transport import CHUNK_BYTES, Limits, LogBudget, MessageLoop

log = logging.getLogger(__name__)
TOKEN_ENV = "CODET5_LSP_TOKEN"


class SessionProtocol(Codet5Protocol):
    """A daemon session: `exit` ends this connection, not the process."""

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:
        self._server.shutdown()
        if self.writer is not None:
            self.writer.close()


class BoundedWriter:
    """pygls's writer over a socket, disconnecting a client whose unread replies pass `limit` bytes."""

    def __init__(self, writer: asyncio.StreamWriter, limit: int, on_overflow: Callable[[], None]) -> None:
        self._writer = writer
        self._limit = limit
        self._on_overflow = on_overflow

    def write(self, data: bytes) -> None:
        transport = self._writer.transport
        if transport.is_closing():
            return
        self._writer.write(data)
        if transport.get_write_buffer_size() > self._limit:
            self._on_overflow()
            transport.abort()

    def close(self) -> None:
        self._writer.close()


class Connection(MessageLoop):
    """One client's byte stream into its session, with the daemon's limits and token check."""

    def __init__(self, server: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str | None,
                 limits: Limits, notes: LogBudget) -> None:
        super().__init__(server, min(limits.max_message_bytes, limits.handshake_bytes), notes)
        self.reader = reader
        self.writer = writer
        self.token = token
        self.limits = limits
        self.peer = writer.get_extra_info("peername")
        self.admitted = token is None
        self.ended = ""  # why the daemon ended the connection, if it did
        self._read = 0
        self._deadline = asyncio.get_running_loop().time() + limits.handshake_timeout
        server.protocol.set_writer(BoundedWriter(writer, limits.write_buffer_bytes,
                                                 lambda: self._end("it does not read its replies")))

    @property
    def initialized(self) -> bool:
        return self.admitted and self.protocol._workspace is not None

    async def read_chunk(self) -> bytes:
        try:
            if self.writer.transport.get_write_buffer_size():
                await asyncio.wait_for(self.writer.drain(), self.limits.drain_timeout)  # back-pressure
        except TimeoutError:
            return self._end(f"it has not read its replies for {self.limits.drain_timeout:g} s")
        except ConnectionError:
            return b""
        try:
            if self.initialized:
                return await self.reader.read(CHUNK_BYTES)
            left = self._deadline - asyncio.get_running_loop().time()
            data = await asyncio.wait_for(self.reader.read(CHUNK_BYTES), max(left, 0))
        except TimeoutError:
            return self._end(f"no initialize within {self.limits.handshake_timeout:g} s")
        except ConnectionError:
            return b""
        self._read += len(data)
        if self._read > self.limits.handshake_bytes and not self.initialized:
            return self._end(f"more than {self.limits.handshake_bytes} bytes before initialize")
        return data

    def handle(self, event: Body | FramingError | TooLarge) -> bool:
        if isinstance(event, Body) or self.initialized or (self.admitted and isinstance(event, FramingError)):
            return super().handle(event)
        what = f"a message of {event.size} bytes" if isinstance(event, TooLarge) else "bytes that are not a message"
        self._refuse(None, f"{what} before initialize")
        return False

    def dispatch(self, body: bytes) -> None:
        if not self.admitted:
            try:
                raw = json.loads(body)
            except (ValueError, RecursionError):
                raw = None
            if not self._carries_token(raw):
                self._refuse(raw, "it did not send the daemon's token")
                return
            self.admitted = True
        was_initialized = self.initialized
        super().dispatch(body)
        if self.initialized and not was_initialized:
            self.framer.max_body = self.limits.max_message_bytes
            self.notes = LogBudget(log)  # its own budget from now on
            log.info("client %s connected", self.peer)

    def _carries_token(self, raw: Any) -> bool:
        if not isinstance(raw, dict) or raw.get("method") != types.INITIALIZE or "id" not in raw:
            return False
        params = raw.get("params")
        options = params.get("initializationOptions") if isinstance(params, dict) else None
        sent = options.get(TOKEN_OPTION) if isinstance(options, dict) else None
        return isinstance(sent, str) and self.token is not None and hmac.compare_digest(sent.encode(), self.token.encode())

    def _refuse(self, raw: Any, reason: str) -> None:
        """Answer a request with an error that says what is missing, then close the connection."""
        if isinstance(raw, dict) and "id" in raw and isinstance(raw.get("method"), str):
            carried = raw["id"] if isinstance(raw["id"], (str, int)) and not isinstance(raw["id"], bool) else None
            message = (f"codet5-lsp: this daemon needs its token: send it as initializationOptions.{TOKEN_OPTION} in initialize"
                       if self.token is not None else "codet5-lsp: this daemon expects initialize first")
            self.protocol._send_response(carried, error=JsonRpcInvalidRequest(message, data={"retry": False}).to_response_error())
        self._end(f"refused: {reason}")

    def _end(self, reason: str) -> bytes:
        if not self.ended:
            self.ended = reason
        self.server.shutdown()
        self.writer.close()
        return b""


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
    token: str | None = None, limits: Limits = Limits(),
) -> None:
    """Accept LSP clients on host:port until cancelled; each gets its own session, only after
    sending `token` when one is given, within `limits`."""
    open_connections = 0
    before_initialize = LogBudget(log, burst=20, interval=5.0)  # one budget for every connection not yet initialized

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections
        peer = writer.get_extra_info("peername")
        if open_connections >= limits.connections:
            before_initialize.log(logging.WARNING, "refused a connection from %s: %d are open (--max-connections)", peer, open_connections)
            writer.transport.abort()
            return
        open_connections += 1
        server = create_server(model_host, pinned=settings, protocol_cls=SessionProtocol)
        server.limits = SessionLimits()  # no editor's settings may starve the others
        server.settings = server.limits.clamp(server.settings)[0]
        server._stop_event = threading.Event()
        connection = Connection(server, reader, writer, token, limits, before_initialize)
        try:
            await connection.run(server._stop_event)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            connection.ended = connection.ended or f"dropped: {exc}"
        finally:
            open_connections -= 1
            server.close()
            writer.close()
            reason = f" ({connection.ended})" if connection.ended else ""
            if connection.initialized:
                log.info("client %s disconnected%s", peer, reason)
            else:
                before_initialize.log(logging.WARNING if connection.ended else logging.INFO,
                                      "connection from %s closed before initialize%s", peer, reason)

    listener = await asyncio.start_server(session, host, port)
    bound = listener.sockets[0].getsockname()[1]
    print(f"codet5-lsp: listening on {host}:{bound}", file=sys.stderr, flush=True)
    if on_listening:
        on_listening(bound)
    model_host.ensure(settings)
    async with listener:
        await listener.serve_forever()
