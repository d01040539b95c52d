"""Reading a client's framed messages into a session, for stdio and for daemon connections.

pygls's reader matches `Content-Length: N\\r\\n` exactly and trusts N: a lower-case header, a
missing space, LF line ends or a wrong length left the connection deaf for good, and a large N
was buffered whole. Here framing follows `framing` (lenient, resynchronising), every message
has a size limit (`--max-message-bytes`), framing errors get a parse error (id null) and a
rate-limited log line, and a JSON array (a JSON-RPC batch, which LSP does not use) gets one
InvalidRequest error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest, JsonRpcParseError
from pygls.io_ import StdoutWriter

from .framing import Body, Framer, FramingError, TooLarge

log = logging.getLogger(__name__)
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """What one client may send and hold; the daemon's connections, together and before initialize."""

    max_message_bytes: int = 64 * 1024 * 1024  # a didOpen of a 20 MB file, JSON-escaped, fits
    connections: int = 64
    handshake_bytes: int = 256 * 1024  # everything a connection sends before initialize is answered
    handshake_timeout: float = 10.0
    write_buffer_bytes: int = 4 * 1024 * 1024  # replies the client has not read yet
    drain_timeout: float = 60.0


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """The command-line options that set `Limits`."""
    parser.add_argument("--max-message-bytes", type=_positive(int), default=Limits.max_message_bytes,
                        help=f"largest message a client may send (default {Limits.max_message_bytes}); a larger one gets an error and is skipped")
    parser.add_argument("--max-connections", type=_positive(int), default=Limits.connections,
                        help=f"daemon: connections open at once (default {Limits.connections})")
    parser.add_argument("--handshake-timeout", type=_positive(float), default=Limits.handshake_timeout,
                        help=f"daemon: seconds a connection has to send initialize (default {Limits.handshake_timeout:g})")


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(max_message_bytes=args.max_message_bytes, connections=args.max_connections, handshake_timeout=args.handshake_timeout)


class LogBudget:
    """Lets `burst` lines through, then one per `interval` seconds; the next line let through
    says how many were left out. Keeps hostile clients from growing the log without end."""

    def __init__(self, logger: logging.Logger, burst: int = 10, interval: float = 10.0) -> None:
        self._logger = logger
        self._burst = burst
        self._interval = interval
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._dropped = 0

    def log(self, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
        self._last = now
        if self._tokens < 1:
            self._dropped += 1
            return
        self._tokens -= 1
        if self._dropped:
            message = f"{message} (and {self._dropped} similar lines left out)"
            self._dropped = 0
        self._logger.log(level, message, *args)


class MessageLoop:
    """Feeds a server's protocol the messages framed on a byte stream; `read_chunk` supplies the bytes."""

    def __init__(self, server: Any, max_message_bytes: int, notes: LogBudget) -> None:
        self.server = server
        self.protocol = server.protocol
        self.framer = Framer(max_message_bytes)
        self.notes = notes

    async def read_chunk(self) -> bytes:
        """The next bytes from the client; b"" when it is gone."""
        raise NotImplementedError

    async def run(self, stop: threading.Event) -> None:
        """Read and dispatch until the stream ends, `stop` is set or `handle` says to stop."""
        while not stop.is_set():
            data = await self.read_chunk()
            if not data:
                return
            self.framer.feed(data)
            while not stop.is_set() and (event := self.framer.next_event()) is not None:
                try:
                    if not self.handle(event):
                        return
                except Exception as exc:  # a bug in reading one message: that message is lost, the session goes on
                    log.exception("could not read a message")
                    self.reply_error(JsonRpcParseError(f"could not read this message: {_first_line(exc)}"))

    def handle(self, event: Body | FramingError | TooLarge) -> bool:
        """Act on one framing event; False to stop reading."""
        if isinstance(event, Body):
            self.dispatch(event.data)
        elif isinstance(event, TooLarge):
            self.notes.log(logging.WARNING, "skipped a message of %d bytes: over the limit of %d bytes (--max-message-bytes)",
                           event.size, event.limit)
            self.reply_error(JsonRpcInvalidRequest(
                f"a message of {event.size} bytes is over this server's limit of {event.limit} bytes "
                "(codet5-lsp --max-message-bytes); it was skipped"))
        else:
            self.notes.log(logging.WARNING, "framing error: %s", event.reason)
            if event.reply:
                self.reply_error(JsonRpcParseError(f"framing error: {event.reason}"))
        return True

    def dispatch(self, body: bytes) -> None:
        """Parse one body and hand it to the protocol (answering what cannot be parsed)."""
        batch = body.lstrip()[:1] == b"["
        try:
            message = json.loads(body) if batch else json.loads(body, object_hook=self.protocol.structure_message)
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8/16/32, nested too deep
            mended = self.framer.recover(body)
            if mended is not None:
                self.dispatch(mended)
                return
            self.notes.log(logging.WARNING, "a message that is not JSON: %s", _first_line(exc))
            self.reply_error(JsonRpcParseError(f"invalid JSON: {_first_line(exc)}"))
            return
        if batch:
            self.reply_error(JsonRpcInvalidRequest("batches (JSON arrays) are not supported: send each message on its own"))
            return
        try:
            self.protocol.handle_message(message)
        except Exception as exc:  # a bug: the session goes on
            log.exception("could not handle a message")
            self.server._report_server_error(exc, JsonRpcException)

    def reply_error(self, error: JsonRpcException) -> None:
        self.protocol._send_response(None, error=error.to_response_error())


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:200]


class _StdinLoop(MessageLoop):
    """Reads stdin in a daemon thread (never joined, so a pending read cannot delay the exit)."""

    def __init__(self, server: Any, max_message_bytes: int, fd: int) -> None:
        super().__init__(server, max_message_bytes, LogBudget(log))
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
        self._fd = fd

    def start_reading(self) -> None:
        loop = asyncio.get_running_loop()

        def pump() -> None:
            while True:
                try:
                    data = os.read(self._fd, CHUNK_BYTES)
                except OSError:
                    data = b""
                try:
                    asyncio.run_coroutine_threadsafe(self._chunks.put(data), loop).result()
                except (RuntimeError, asyncio.CancelledError):  # the loop is gone
                    return
                if not data:
                    return

        threading.Thread(target=pump, name="stdin", daemon=True).start()

    async def read_chunk(self) -> bytes:
        return await self._chunks.get()


def serve_stdio(server: Any, max_message_bytes: int = Limits.max_message_bytes) -> int:
    """Serve one client over stdin/stdout until it leaves; returns the exit code LSP asks for
    (0 after `shutdown` then `exit`, 1 for an `exit` without `shutdown`)."""
    server._stop_event = stop = threading.Event()
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    reader = _StdinLoop(server, max_message_bytes, sys.stdin.fileno())

    async def main() -> None:
        reader.start_reading()
        await reader.run(stop)

    try:
        asyncio.run(main())
    except SystemExit as exc:  # pygls's `exit` handler
        return exc.code if isinstance(exc.code, int) else 1
    except BrokenPipeError:
        log.error("the client closed its end of the pipe")
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0
