"""The server's log: secrets never written, a log file only its owner can read, and no message
bodies at the default level.

Every log record is made redacted (`redact` registers a secret: the daemon's token), whichever
handler writes it and at every level, tracebacks included. pygls logs whole messages at INFO
(`initialize`'s params, which carry the token, and every reply); its loggers stay at WARNING
unless -v asks for debug logging.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

REDACTED = "<redacted>"
_secrets: list[str] = []  # each secret in the forms it can take in a message (plain, JSON-escaped, repr)
_make_record = logging.getLogRecordFactory()


def redact(secret: str) -> None:
    """Never let `secret` into the log from now on."""
    for form in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]):
        if form and form not in _secrets:
            _secrets.append(form)
    _secrets.sort(key=len, reverse=True)


def _scrub(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, REDACTED)
    return text


def _redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _make_record(*args, **kwargs)
    if not _secrets:
        return record
    try:
        message = record.getMessage()
    except Exception:  # wrong arguments: left for the handler to report, as logging does
        return record
    clean = _scrub(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info:  # formatted here, so that every handler writes the redacted text
        record.exc_text = _scrub(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = _scrub(record.stack_info)
    return record


def prepare_logging(log_file: Path | None, verbose: bool, quiet: bool = False) -> None:
    """Before the log is configured: redaction on, the log file created (or narrowed) to mode 0600,
    pygls's message dumps off unless `verbose` (and everything of pygls's off when `quiet`)."""
    logging.setLogRecordFactory(_redacted_record)
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbose else logging.CRITICAL if quiet else logging.WARNING)
    if log_file is None:
        return
    try:
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    except OSError as exc:
        print(f"codet5-lsp: warning: cannot make the log file {log_file} private: {exc.strerror or exc}", file=sys.stderr, flush=True)
