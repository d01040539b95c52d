"""The base protocol's framing (`Content-Length: N` headers, a blank line, N bytes of body), read
leniently and past its errors.

Headers are read as vscode-jsonrpc reads them and a little more loosely: any case, any spaces
around the colon, CRLF or LF line ends, blank lines between messages, unknown headers ignored.
A framing error (no or a bad Content-Length, a header line that is not `Name: value`, bytes
that are no header at all) is reported and reading resumes at the next `Content-Length` or
`Content-Type` header. A wrong Content-Length is survived too: a body that is cut short by the
next message's header (the length was too large) ends there, and a body that is not JSON is
mended where it can be (see `recover`).

Sans I/O: `feed` bytes, then take events with `next_event` until it returns None.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_HEADER_BYTES = 8192  # one header line, or junk without a line end, past which bytes are dropped
_HEADER_LINE = re.compile(rb"([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)")
_HEADER_START = re.compile(rb"content-(?:length|type)[ \t]*:", re.IGNORECASE)
# A whole Content-Length line: inside a body it can only mean that the next message began, since
# valid JSON cannot hold it (the digits would be followed by a raw line end outside any string).
_NEXT_MESSAGE = re.compile(rb"content-length[ \t]*:[ \t]*\d+[ \t]*\r?\n", re.IGNORECASE)
_JSON_WHITESPACE = " \t\n\r"  # str.lstrip() alone also strips form feeds and the like, which JSON does not allow
_OVERLAP = 64  # bytes searched again when more arrive, so that a header split between reads is found
_MAX_DIGITS = 18


@dataclass(frozen=True)
class Body:
    """A message body (not yet parsed)."""

    data: bytes


@dataclass(frozen=True)
class FramingError:
    """Bytes that were not a well-framed message; `reply`: the client is owed a parse error
    (a header was being read), else the bytes were junk between messages."""

    reason: str
    reply: bool


@dataclass(frozen=True)
class TooLarge:
    """A header announced a body over the limit; its bytes are skipped as they arrive."""

    size: int
    limit: int


Event = Body | FramingError | TooLarge


class Framer:
    """Splits a byte stream into message bodies. `max_body` may be changed between events."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self._buffer = bytearray()
        self._fields: dict[bytes, bytes] | None = None  # headers of the message being read
        self._need: int | None = None  # body bytes announced, while a body is read
        self._searched = 0  # how far the pending body was searched for a next message
        self._skip = 0  # bytes of a too-large body still to drop

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_event(self) -> Event | None:
        """The next event the bytes fed so far make, or None until more arrive."""
        if self._skip:
            self._drop_skipped()
            if self._skip:
                return None
        if self._need is not None:
            return self._body()
        return self._headers()

    def recover(self, body: bytes) -> bytes | None:
        """The message `body` was probably meant to be, when `body` is not JSON, else None.

        A JSON value followed by more bytes: the Content-Length was too large, and the bytes after
        the value are read again as what follows. A start of JSON that the bytes after it, up to
        the next header, complete: it was too small, and those bytes are consumed.
        """
        try:
            text = body.decode("utf-8")
            value_end = json.JSONDecoder().raw_decode(text, len(text) - len(text.lstrip(_JSON_WHITESPACE)))[1]
        except (ValueError, RecursionError):
            pass
        else:
            taken = len(text[:value_end].encode("utf-8"))
            if taken == len(body):  # the whole body is the value, yet not JSON: nothing to mend
                return None
            self._buffer[:0] = body[taken:]
            return body[:taken]
        found = _HEADER_START.search(self._buffer)
        end = found.start() if found else len(self._buffer)
        longer = body + bytes(self._buffer[:end])
        try:
            json.loads(longer)
        except (ValueError, RecursionError):
            return None
        del self._buffer[:end]
        return longer

    def _drop_skipped(self) -> None:
        found = _NEXT_MESSAGE.search(self._buffer, 0, min(len(self._buffer), self._skip + _OVERLAP))
        if found and found.start() < self._skip:
            del self._buffer[:found.start()]
            self._skip = 0
            return
        # Keep a tail that may be the start of a header split between reads, unless it is still body.
        drop = self._skip if self._skip <= len(self._buffer) else max(0, len(self._buffer) - _OVERLAP)
        del self._buffer[:drop]
        self._skip -= drop

    def _body(self) -> Body | None:
        need = self._need
        assert need is not None
        end = min(len(self._buffer), need + _OVERLAP)  # a header that starts inside the body may end past it
        start = max(0, self._searched - _OVERLAP)
        if self._buffer.find(b"\n", start, end) >= 0:
            found = _NEXT_MESSAGE.search(self._buffer, start, end)
            if found and found.start() < need:  # the announced length ran into the next message: the body ends there
                return self._take_body(found.start())
        self._searched = min(end, need)
        return self._take_body(need) if len(self._buffer) >= need else None

    def _take_body(self, size: int) -> Body:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._need = None
        self._searched = 0
        return Body(data)

    def _headers(self) -> Event | None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return self._overlong() if len(self._buffer) > MAX_HEADER_BYTES else None
            line = bytes(self._buffer[:end]).strip()
            if not line:
                del self._buffer[:end + 1]
                if self._fields is not None:
                    return self._end_of_headers()
                continue  # blank lines between messages
            match = _HEADER_LINE.fullmatch(line)
            header = _HEADER_START.search(self._buffer, 0, end)
            if match is None or (header and bytes(self._buffer[:header.start()]).strip()):  # bytes before a header
                return self._junk()
            del self._buffer[:end + 1]
            self._fields = self._fields or {}
            self._fields[match.group(1).lower()] = match.group(2).strip()

    def _junk(self) -> FramingError:
        """Drop bytes up to the next header, or every complete line if none is buffered."""
        found = _HEADER_START.search(self._buffer, 1)
        cut = found.start() if found else self._buffer.rfind(b"\n") + 1
        del self._buffer[:cut]
        return self._error(f"skipped {cut} bytes that are not a message header")

    def _overlong(self) -> FramingError:
        found = _HEADER_START.search(self._buffer, 1)
        cut = found.start() if found else len(self._buffer) - _OVERLAP
        del self._buffer[:cut]
        return self._error(f"skipped {cut} bytes without a line end (a header line is at most {MAX_HEADER_BYTES} bytes)")

    def _error(self, reason: str) -> FramingError:
        in_header = self._fields is not None
        self._fields = None
        return FramingError(reason, reply=in_header)

    def _end_of_headers(self) -> Event | None:
        fields, self._fields = self._fields or {}, None
        value = fields.get(b"content-length")
        if value is None:
            return FramingError("a message header without Content-Length", reply=True)
        if not value.isdigit():
            return FramingError(f"Content-Length {value[:40].decode('ascii', 'replace')!r} is not a number of bytes", reply=True)
        size = int(value) if len(value) <= _MAX_DIGITS else 10**_MAX_DIGITS
        if size == 0:
            return FramingError("Content-Length 0: a message cannot be empty", reply=True)
        if size > self.max_body:
            self._skip = size
            return TooLarge(size, self.max_body)
        self._need = size
        return self._body()
