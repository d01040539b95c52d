"""Hostile clients on the transport (issue 17, items 2-6, 11 and 13), against real server and
daemon subprocesses over raw pipes and sockets.

Framing: header variants are accepted, framing errors get a parse error and the next message is
served, a wrong Content-Length is survived, oversized messages are refused without being
buffered. The daemon: bounded before initialize (bytes, time, connections), a client that never
reads its replies cannot grow it, the token never reaches the log, the log file is private and
the log does not grow without end under hostile connections. LSP: `exit` without `shutdown`
exits with 1; a batch gets one error.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import re
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from lsp_server.cli import MIN_TOKEN_CHARS
from lsp_server.daemon import TOKEN_ENV
from lsp_server.framing import Body, Framer, FramingError, TooLarge
from lsp_server.logs import REDACTED
from lsp_server.transport import LogBudget, MessageLoop
from tests.lsp_harness import SERVER, RawConnection, server_env

TOKEN = "hostile-suite-token-0123456789"
PREFIX = "def add(a, b):\n    return"
STATUS = {"jsonrpc": "2.0", "method": "workspace/executeCommand", "params": {"command": "codet5.status"}}


def frame(message: dict | list, header: bytes = b"Content-Length: %d\r\n\r\n") -> bytes:
    body = json.dumps(message).encode()
    return header % len(body) + body


def status(request_id: int) -> dict:
    return {**STATUS, "id": request_id}


def initialize(request_id: int = 1, options: dict | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": {"capabilities": {}, "initializationOptions": options}}


# -- the framer alone -----------------------------------------------------------------------------
def _events(data: bytes, max_body: int = 10_000, step: int | None = None) -> list:
    framer, events = Framer(max_body), []
    for start in range(0, len(data), step or len(data)):
        framer.feed(data[start:start + (step or len(data))])
        while (event := framer.next_event()) is not None:
            if isinstance(event, Body) and (mended := _parses(event.data, framer)) is not None:
                event = Body(mended)
            events.append(event)
    return events


def _parses(body: bytes, framer: Framer) -> bytes | None:
    try:
        json.loads(body)
        return body
    except ValueError:
        return framer.recover(body)


GOOD = json.dumps(status(7)).encode()


@pytest.mark.parametrize("header", [
    b"Content-Length: %d\r\n\r\n", b"content-length: %d\r\n\r\n", b"CONTENT-LENGTH:%d\r\n\r\n", b"Content-Length :  %d  \r\n\r\n",
    b"Content-Length: %d\n\n", b"Content-Length: %d\r\n\n", b"\r\n\n\r\nContent-Length: %d\r\n\r\n",
    b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: %d\r\n\r\n",
    b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\nX-Other: 1\r\n\r\n",
])
@pytest.mark.parametrize("step", [None, 1, 7])
def test_framer_reads_header_variants_in_any_chunking(header, step):
    assert _events((header % len(GOOD)) + GOOD + frame(status(8)), step=step) == [Body(GOOD), Body(json.dumps(status(8)).encode())]


@pytest.mark.parametrize(("broken", "errors"), [
    (b"Content-Length: %d\r\n\r\n" % (len(GOOD) - 6) + GOOD, 0),  # too short: the rest of the JSON completes it
    (b"Content-Length: %d\r\n\r\n" % (len(GOOD) + 40) + GOOD, 0),  # too long: cut at the next header
    (b"Content-Length: %d\r\n\r\n" % (len(GOOD) + 3) + GOOD, 0),  # too long by less than a header
    (b"Content-Length: 0\r\n\r\n" + GOOD, 1),
    (b"Content-Length: -5\r\n\r\n" + GOOD, 1),
    (b"Content-Length: abc\r\n\r\n" + GOOD, 1),
    (b"Content-Type: x\r\n\r\n" + GOOD, 1),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    (bytes(range(256)) * 100, 0),
])
@pytest.mark.parametrize("step", [None, 5])
def test_framer_survives_framing_errors_and_finds_the_next_message(broken, errors, step):
    events = _events(broken + frame(status(8)), step=step)
    assert events[-1] == Body(json.dumps(status(8)).encode()), events
    assert len([e for e in events if isinstance(e, FramingError) and e.reply]) <= max(errors, 1)
    if step is None and broken.endswith(GOOD) and not errors:  # arriving at once, as one write does
        assert Body(GOOD) in events  # the message with the wrong length was recovered


@pytest.mark.parametrize("body", [b"\x0c5", b"\x0b{}", b"\xc2\xa0[]", b"\x1c\x1d7"])
def test_framer_does_not_mend_a_value_behind_whitespace_json_does_not_allow(body):
    """Python's str.lstrip strips a form feed but JSON does not: such a body was "mended" into itself
    and dispatched again without end, until the recursion limit ended the server (found by the fuzzer)."""
    framer = Framer(1000)
    assert framer.recover(body) is None and framer.buffered == 0


def test_a_message_that_cannot_be_read_is_answered_and_the_next_one_is_served(monkeypatch):
    """A bug while reading one body (here: mending it raises) costs that body, not the session."""
    class Protocol:
        def __init__(self) -> None:
            self.handled: list = []
            self.errors: list = []

        def structure_message(self, data: dict) -> dict:
            return data

        def handle_message(self, message: dict) -> None:
            self.handled.append(message)

        def _send_response(self, msg_id: object, error: object) -> None:
            self.errors.append(error)

    class Server:
        protocol = Protocol()

    class Loop(MessageLoop):
        chunks = [frame(status(1))[:-1] + b"x", frame(status(2)), b""]  # the first body's JSON is broken

        async def read_chunk(self) -> bytes:
            return self.chunks.pop(0)

    def broken(self: Framer, body: bytes) -> bytes | None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Framer, "recover", broken)
    asyncio.run(Loop(Server(), 10_000, LogBudget(logging.getLogger("test"))).run(threading.Event()))
    assert [message["id"] for message in Server.protocol.handled] == [2]
    assert [error.code for error in Server.protocol.errors] == [-32700]


def test_framer_skips_an_oversized_body_without_keeping_it():
    framer = Framer(1000)
    framer.feed(b"Content-Length: 1000000000\r\n\r\n")
    assert framer.next_event() == TooLarge(1_000_000_000, 1000)
    for _ in range(100):
        framer.feed(b"x" * 65536)
        assert framer.next_event() is None and framer.buffered <= 65536
    framer.feed(frame(status(9)))  # the sender gave up on the body: the next header resynchronizes
    assert framer.next_event() == Body(json.dumps(status(9)).encode())


# -- the stdio server -----------------------------------------------------------------------------
class Stdio:
    """A server subprocess over raw pipes."""

    def __init__(self, raw: RawConnection) -> None:
        self.raw = raw

    @classmethod
    async def start(cls, cache: Path, *args: str) -> Stdio:
        env = {**server_env(cache), "CODET5_LSP_SMOLLM2_WHEEL": str(cache / "none.whl"), "CODET5_LSP_WHEELS": str(cache / "none")}
        process = await asyncio.create_subprocess_exec(*SERVER, *args, env=env, stdin=asyncio.subprocess.PIPE,
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        return cls(RawConnection(process))

    async def write(self, data: bytes) -> None:
        assert self.raw.process.stdin is not None
        self.raw.process.stdin.write(data)
        await self.raw.process.stdin.drain()

    async def answers(self, count: int, timeout: float = 30.0) -> list[dict]:
        """The next `count` responses (server-to-client notifications and requests skipped)."""
        found = []
        while len(found) < count:
            message = await self.raw.receive(timeout)
            if "method" not in message:
                found.append(message)
        return found


@pytest.fixture
async def stdio(tmp_path, tiny_models):
    server = await Stdio.start(tmp_path, "--model", str(tiny_models.llama_int8), "--threads", "1", "--max-message-bytes", "100000")
    await server.write(frame(initialize()))
    assert "capabilities" in (await server.answers(1))[0]["result"]
    yield server
    await server.raw.close()


HEADERS = [b"content-length: %d\r\n\r\n", b"Content-Length:%d\r\n\r\n", b"Content-Length: %d\n\n", b"CONTENT-LENGTH :%d\r\n\n",
           b"Content-Type: application/vscode-jsonrpc; charset=utf-8\nContent-Length: %d\n\n", b"\r\n\r\nContent-Length: %d\r\n\r\n"]


async def test_stdio_accepts_header_variants(stdio):
    for number, header in enumerate(HEADERS, start=10):
        await stdio.write(frame(status(number), header))
        answer = (await stdio.answers(1))[0]
        assert answer["id"] == number and "result" in answer, (header, answer)


BROKEN = [  # (bytes, whether a parse error is owed)
    (b"Content-Length: 0\r\n\r\n", True),
    (b"Content-Length: -12\r\n\r\n{}", True),
    (b"Content-Length: twelve\r\n\r\n{}", True),
    (b"Content-Length: 9\r\n\r\n{not json", True),
    (b"Content-Type: text/plain\r\n\r\nhello", True),
    (b"Content-Length: 2\r\n\r\n\x0c5", True),  # a value behind a form feed, which JSON does not count as whitespace
    (b"GET / HTTP/1.1\r\n\r\n", False),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(200)), False),
]


async def test_stdio_answers_framing_errors_and_serves_the_next_message(stdio):
    for number, (broken, owed) in enumerate(BROKEN, start=20):
        await stdio.write(broken + frame(status(number)))
        answers = await stdio.answers(2 if owed else 1)
        assert answers[-1]["id"] == number and "result" in answers[-1], (broken, answers)
        if owed:
            assert answers[0]["id"] is None and answers[0]["error"]["code"] == -32700, (broken, answers)


async def test_stdio_survives_a_wrong_content_length(stdio):
    for number, wrong_by in ((30, -4), (31, 25), (32, 2)):
        body = json.dumps(status(number)).encode()
        await stdio.write(b"Content-Length: %d\r\n\r\n" % (len(body) + wrong_by) + body + frame(status(number + 100)))
        answers = await stdio.answers(2)
        assert sorted(a["id"] for a in answers) == [number, number + 100] and all("result" in a for a in answers), answers


async def test_stdio_refuses_an_oversized_message_without_buffering_it(stdio):
    document = {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": "file:///big.py", "languageId": "python", "version": 1, "text": "x = 1\n" * 50_000}}}
    await stdio.write(frame(document) + frame(status(40)))
    refused, served = await stdio.answers(2)
    assert refused["id"] is None and refused["error"]["code"] == -32600 and "--max-message-bytes" in refused["error"]["message"]
    assert served["id"] == 40 and "result" in served
    process = psutil.Process(stdio.raw.process.pid)
    before = process.memory_info().rss
    await stdio.write(b"Content-Length: 1000000000\r\n\r\n")
    for _ in range(60):
        await stdio.write(b"x" * 1_000_000)
    await stdio.write(frame(status(41)))
    answers = await stdio.answers(2)
    assert answers[-1]["id"] == 41 and "result" in answers[-1]
    assert process.memory_info().rss - before < 30_000_000  # 60 MB sent, not kept


async def test_stdio_batches_get_one_error_each_and_are_not_run(stdio):
    for number, batch in enumerate(([], [status(50)], [status(51), {"jsonrpc": "2.0", "method": "initialized", "params": {}}]), start=50):
        await stdio.write(frame(batch) + frame(status(number + 100)))
        error, after = await stdio.answers(2)
        assert error["id"] is None and error["error"]["code"] == -32600 and "batch" in error["error"]["message"], error
        assert after["id"] == number + 100  # the member was not run: its answer would have come first


@pytest.mark.parametrize(("shutdown", "code"), [(False, 1), (True, 0)])
async def test_stdio_exit_code_follows_shutdown(tmp_path, shutdown, code):
    server = await Stdio.start(tmp_path)
    try:
        await server.write(frame(initialize()))
        await server.answers(1)
        if shutdown:
            await server.write(frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
            await server.answers(1)
        await server.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        assert await asyncio.wait_for(server.raw.process.wait(), 30) == code
    finally:
        await server.raw.close()


# -- the daemon -----------------------------------------------------------------------------------
class Daemon:
    def __init__(self, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    @classmethod
    async def start(cls, tmp_path: Path, model: Path, *args: str, env: dict[str, str] | None = None) -> Daemon:
        log = tmp_path / "daemon.log"
        process = await asyncio.create_subprocess_exec(
            *SERVER, "--tcp", "--port", "0", "--model", str(model), "--threads", "1", "--log-file", str(log), *args,
            env=env or server_env(tmp_path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert process.stderr is not None
        while True:
            line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
            assert line, "the daemon exited before listening"
            if match := re.search(r"listening on [^:]+:(\d+)", line):
                return cls(process, int(match.group(1)), log)

    async def stop(self) -> str:
        if self.process.returncode is None:
            self.process.terminate()
        await self.process.wait()
        return self.log.read_text(errors="replace")

    async def logged(self, text: str, times: int = 1) -> None:
        """Wait until the log has `text` `times` times."""
        for _ in range(300):
            if self.log.read_text(errors="replace").count(text) >= times:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{text!r} not logged {times} times: {self.log.read_text(errors='replace')}")

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss


class Socket:
    """A raw client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Socket:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self, timeout: float = 30.0) -> dict:
        length = 0
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise EOFError("closed")
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif line.strip() == b"" and length:
                return json.loads(await asyncio.wait_for(self.reader.readexactly(length), timeout))

    async def answer(self, request_id: int, timeout: float = 30.0) -> dict:
        while True:
            message = await self.receive(timeout)
            if message.get("id") == request_id and "method" not in message:
                return message

    async def closed_by_peer(self, timeout: float = 30.0) -> bool:
        """Whether the daemon closes the connection (everything it still sends is read and dropped)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except ConnectionError:
            pass
        except asyncio.TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.writer.transport.abort()


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\nthe second line is not part of the token\n")
    path.chmod(0o600)
    return path


async def test_daemon_with_a_token_closes_what_comes_before_its_initialize(tmp_path, tiny_models, token_file):
    daemon = await Daemon.start(tmp_path, tiny_models.llama_int8, "--token-file", str(token_file), "--handshake-timeout", "1")
    try:
        idle = await Socket.open(daemon.port)
        assert await idle.closed_by_peer()  # silent: closed after the handshake timeout
        huge = await Socket.open(daemon.port)
        before = daemon.rss()
        await huge.send(b"Content-Length: 1000000000\r\n\r\n")
        with pytest.raises(ConnectionError):  # refused at the header: the body is never read
            for _ in range(300):
                await huge.send(b"x" * 1_000_000)
        assert daemon.rss() - before < 30_000_000
        good = await Socket.open(daemon.port)
        await good.send(frame(initialize(1, {"token": TOKEN})))
        assert "result" in await good.answer(1)
        await good.send(frame(status(2), b"content-length:%d\n\n"))  # framing variants after initialize too
        assert "result" in await good.answer(2)
        good.close()
    finally:
        log = await daemon.stop()
    assert "no initialize within 1 s" in log and "a message of 1000000000 bytes before initialize" in log


async def test_daemon_limits_connections_and_what_they_send_before_initialize(tmp_path, tiny_models):
    daemon = await Daemon.start(tmp_path, tiny_models.llama_int8, "--max-connections", "3", "--handshake-timeout", "60")
    try:
        idle = [await Socket.open(daemon.port) for _ in range(3)]
        await asyncio.sleep(0.5)
        extra = await Socket.open(daemon.port)
        assert await extra.closed_by_peer()
        for sock in idle:
            sock.close()
        await daemon.logged("closed before initialize", 3)
        chatty = await Socket.open(daemon.port)  # many small messages before initialize
        with pytest.raises(ConnectionError):
            for number in range(100_000):
                await chatty.send(frame({"jsonrpc": "2.0", "method": "$/nothing", "params": {"n": number}}))
        good = await Socket.open(daemon.port)
        await good.send(frame(initialize()))
        assert "result" in await good.answer(1)
        good.close()
    finally:
        log = await daemon.stop()
    assert "--max-connections" in log and "bytes before initialize" in log, log


async def test_a_client_that_never_reads_cannot_grow_the_daemon(tmp_path, tiny_models):
    daemon = await Daemon.start(tmp_path, tiny_models.llama_int8)
    try:
        greedy = await Socket.open(daemon.port)
        greedy.writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await greedy.send(frame(initialize()))
        await greedy.answer(1)
        before = daemon.rss()
        requests = b"".join(frame(status(n)) for n in range(2, 1002))
        sent = 0
        try:
            for _ in range(60):  # 60,000 requests whose answers are never read
                greedy.writer.write(requests)
                await asyncio.wait_for(greedy.writer.drain(), 5)
                sent += 1
        except (asyncio.TimeoutError, ConnectionError):
            pass  # the daemon stopped reading (back-pressure) or dropped the connection
        assert sent < 60
        assert daemon.rss() - before < 60_000_000
        other = await Socket.open(daemon.port)  # the daemon still serves everyone else
        await other.send(frame(initialize()))
        assert "result" in await other.answer(1)
        await other.send(frame(status(2)))
        assert "result" in await other.answer(2)
        other.close()
        greedy.close()
    finally:
        await daemon.stop()


@pytest.mark.parametrize("verbose", [False, True])
async def test_the_token_never_reaches_the_log_and_the_log_is_private(tmp_path, tiny_models, token_file, verbose):
    log = tmp_path / "daemon.log"
    log.write_text("")
    log.chmod(0o644)  # an existing log file readable by others is narrowed too
    daemon = await Daemon.start(tmp_path, tiny_models.llama_int8, "--token-file", str(token_file), *(["-v"] if verbose else []))
    try:
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        client = await Socket.open(daemon.port)
        await client.send(frame(initialize(1, {"token": TOKEN, "echo": f"x{TOKEN}x"})))
        assert "result" in await client.answer(1)
        await client.send(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": "file:///t.py", "languageId": "python", "version": 1, "text": f"TOKEN = {TOKEN!r}\n"}}}))
        await client.send(frame({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": {
            "textDocument": {"uri": "file:///t.py"}, "position": {"line": 0, "character": "bad"}}}))  # an error, logged
        await client.answer(2)
        client.close()
        wrong = await Socket.open(daemon.port)
        await wrong.send(frame(initialize(1, {"token": TOKEN[:-1]})))
        assert (await wrong.answer(1))["error"]["code"] == -32600
        await daemon.logged("refused")
    finally:
        text = await daemon.stop()
    assert TOKEN not in text
    assert (REDACTED in text) == verbose  # with -v the initialize params are logged, the token replaced


async def test_hostile_connections_do_not_grow_the_log_without_end(tmp_path, tiny_models, token_file):
    daemon = await Daemon.start(tmp_path, tiny_models.llama_int8, "--token-file", str(token_file))
    try:
        for number in range(200):
            sock = await Socket.open(daemon.port)
            payload = [frame(initialize(1, {"token": "wrong"})), b"garbage\r\n\r\n", frame([]), b"Content-Length: -1\r\n\r\n"][number % 4]
            await sock.send(payload)
            await sock.closed_by_peer()
            sock.close()
    finally:
        text = await daemon.stop()
    lines = [line for line in text.splitlines() if "before initialize" in line or "refused" in line]
    assert 0 < len(lines) <= 40, len(lines)
    assert "similar lines left out" in text or len(lines) < 40


# -- the token's file -----------------------------------------------------------------------------
def _daemon_start_error(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """stderr of a daemon that must refuse to start (no model is loaded: it exits before)."""
    done = subprocess.run([*SERVER, "--tcp", "--port", "0", *args], env=env or server_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    return done.stderr


def test_a_short_token_is_refused_with_a_clear_error(tmp_path, monkeypatch):
    short = tmp_path / "short"
    short.write_text("x" * (MIN_TOKEN_CHARS - 1) + "\n" + "y" * 40)  # only the first line is the token
    short.chmod(0o600)
    error = _daemon_start_error(tmp_path, "--token-file", str(short))
    assert f"has {MIN_TOKEN_CHARS - 1} characters; use at least {MIN_TOKEN_CHARS}" in error and "x" * 10 not in error
    error = _daemon_start_error(tmp_path, env={**server_env(tmp_path), TOKEN_ENV: "short"})
    assert f"${TOKEN_ENV} has 5 characters" in error


async def test_a_token_file_others_can_read_is_warned_about_and_its_first_line_is_the_token(tmp_path, tiny_models, token_file):
    token_file.chmod(0o644)
    process = await asyncio.create_subprocess_exec(
        *SERVER, "--tcp", "--port", "0", "--model", str(tiny_models.llama_int8), "--token-file", str(token_file),
        env=server_env(tmp_path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    try:
        lines = []
        while not (match := re.search(r"listening on [^:]+:(\d+)", lines[-1] if lines else "")):
            lines.append((await asyncio.wait_for(process.stderr.readline(), 60)).decode())
            assert lines[-1], "the daemon exited"
        assert any("other users can read the token file" in line and "chmod 600" in line for line in lines), lines
        client = await Socket.open(int(match.group(1)))
        await client.send(frame(initialize(1, {"token": TOKEN})))
        assert "result" in await client.answer(1)
        client.close()
    finally:
        process.terminate()
        await process.wait()


# -- subprocesses never import from the user's directory (issue 17, item 1) ---------------------
def test_the_demo_runs_its_server_isolated_from_the_working_directory(tmp_path, tiny_models):
    """`codet5-lsp demo` in a directory holding its own `lsp_server` and `inference` packages (what
    a hostile repository could hold): the server it starts never imports them."""
    marker = tmp_path / "imported-from-cwd"
    work = tmp_path / "work"
    for package in ("lsp_server", "inference", "pygls"):
        (work / package).mkdir(parents=True)
        (work / package / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write({package!r})\n")
        (work / package / "__main__.py").write_text(f"open({str(marker)!r}, 'a').write({package!r})\n")
    script = Path(sys.executable).with_name("codet5-lsp")
    done = subprocess.run([str(script), "demo", "--model", str(tiny_models.llama_int8), "--threads", "1"], cwd=work,
                          env=server_env(tmp_path / "cache"), capture_output=True, text=True, timeout=300)
    assert not marker.exists(), marker.read_text()
    assert done.returncode == 0, done.stderr[-2000:]


def test_python_subprocesses_in_the_server_and_tools_run_isolated():
    """Every `sys.executable` launch in lsp_server/ and quantize/ passes -I (no import from the
    working directory, no PYTHON* variables)."""
    repo = Path(__file__).resolve().parents[2]
    launches = []
    for path in [*repo.joinpath("lsp_server").rglob("*.py"), *repo.joinpath("quantize").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and any(isinstance(a, ast.Attribute) and ast.unparse(a) == "sys.executable" for a in node.args):
                rest = [ast.unparse(a) for a in node.args]
                launches.append((f"{path.relative_to(repo)}:{node.lineno}", rest[rest.index("sys.executable") + 1:][:1]))
    assert launches, "the check found no launch at all"
    assert [where for where, following in launches if following != ["'-I'"]] == []
