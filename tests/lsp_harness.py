"""Drive the real server with pygls's LanguageClient, over stdio or TCP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

SERVER = [sys.executable, "-m", "lsp_server"]


class RecordingClient(LanguageClient):
    """A client that records what the server pushes: messages, status, progress."""

    def __init__(self) -> None:
        super().__init__("codet5-lsp-tests", "0")
        self.messages: list[types.ShowMessageParams] = []
        self.statuses: list[dict[str, Any]] = []
        self.progress: list[Any] = []
        self.changed = asyncio.Event()

        @self.feature(types.WINDOW_SHOW_MESSAGE)
        def show_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params)
            self.changed.set()

        @self.feature("codet5/status")
        def status(params: Any) -> None:
            self.statuses.append(params if isinstance(params, dict) else params._asdict())
            self.changed.set()

        @self.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create_progress(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.feature(types.PROGRESS)
        def on_progress(params: types.ProgressParams) -> None:
            value = params.value
            self.progress.append(value if isinstance(value, dict) else getattr(value, "_asdict", lambda: vars(value))())
            self.changed.set()

    async def wait_for(self, predicate, timeout: float = 120.0) -> None:
        """Wait until `predicate(self)` holds."""
        async def loop() -> None:
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), timeout)

    def state(self) -> str | None:
        return self.statuses[-1].get("state") if self.statuses else None


def server_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CODET5_LSP_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    return env


async def initialize(client: RecordingClient, options: dict | None) -> types.InitializeResult:
    result = await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True)),
            initialization_options=options,
        )
    )
    client.initialized(types.InitializedParams())
    return result


@asynccontextmanager
async def stdio_client(cache_dir: Path, options: dict | None, *args: str) -> AsyncIterator[tuple[RecordingClient, types.InitializeResult]]:
    """A client connected to a fresh server subprocess over stdio, initialized with `options`."""
    client = RecordingClient()
    await client.start_io(*SERVER, *args, env=server_env(cache_dir))
    try:
        yield client, await initialize(client, options)
    finally:
        await close(client)


async def close(client: RecordingClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_async(None), 10)
        client.exit(None)
    except Exception:
        pass
    await client.stop()


async def start_daemon(cache_dir: Path, *args: str) -> tuple[asyncio.subprocess.Process, int]:
    """A TCP daemon subprocess on a free port; returns it and its port."""
    process = await asyncio.create_subprocess_exec(
        *SERVER, "--tcp", "--port", "0", *args, env=server_env(cache_dir),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        if not line:
            raise RuntimeError("daemon exited before listening")
        match = re.search(r"listening on [^:]+:(\d+)", line)
        if match:
            asyncio.ensure_future(_drain(process.stderr))
            return process, int(match.group(1))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def open_document(client: RecordingClient, uri: str, text: str, language: str = "python", version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text))
    )


def end_of(text: str) -> types.Position:
    """The position after the last character of `text` (UTF-16 units)."""
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1].encode("utf-16-le")) // 2)


async def inline(client: RecordingClient, uri: str, position: types.Position) -> types.InlineCompletionList:
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
    )


class RawConnection:
    """Framed JSON-RPC over a server subprocess's stdio, for messages no typed client would send."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, cache_dir: Path, *args: str) -> RawConnection:
        process = await asyncio.create_subprocess_exec(
            *SERVER, *args, env=server_env(cache_dir), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        return cls(process)

    def send_bytes(self, body: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send(self, message: dict) -> None:
        self.send_bytes(json.dumps(message).encode())

    async def receive(self, timeout: float = 30.0) -> dict:
        assert self.process.stdout is not None
        length = 0
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            if not line:
                raise EOFError("server closed its output")
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif line in (b"\r\n", b"\n") and length:
                return json.loads(await asyncio.wait_for(self.process.stdout.readexactly(length), timeout))

    async def response(self, request_id: int, timeout: float = 30.0) -> dict:
        """The response to `request_id`, skipping notifications and other traffic."""
        while True:
            message = await self.receive(timeout)
            if message.get("id") == request_id and "method" not in message:
                return message

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
