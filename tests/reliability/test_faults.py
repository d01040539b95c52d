"""Faults: broken models, caches and disks, failing engines, clients that vanish or send garbage.

Pass: a clear message, no crash, nothing half-written in the cache, and recovery once the fault
is fixed (a configuration change, or any `initialized`, retries a failed load).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from inference.models.cache import CACHE_ENV
from inference.models.convert import FORMAT_VERSION, METADATA_FILE, CacheWriteError, read_metadata
from inference.models.resolve import Backend, resolve_model
from lsp_server.model_host import ModelHost
from lsp_server.server import create_server
from tests.lsp_harness import (
    SERVER,
    RecordingClient,
    close,
    end_of,
    initialize,
    inline,
    open_document,
    server_env,
    start_daemon,
    stdio_client,
)
from tests.reliability.test_document_sync import PipeServer

URI = "file:///work/faults.py"
PREFIX = "def add(a, b):\n    return"
REQUEST_FAILED = -32803


def _options(model: Path) -> dict:
    return {"model": str(model), "threads": 1}


async def _expect_failure(client: RecordingClient, *fragments: str) -> None:
    """The status says error, the user was told, and a completion fails with RequestFailed naming the cause."""
    def told(c: RecordingClient) -> str:
        return " ".join(m.message for m in c.messages if m.type == types.MessageType.Error)

    await client.wait_for(lambda c: c.state() == "error" and told(c), timeout=60)
    shown = told(client)
    assert all(fragment in shown for fragment in fragments), shown
    uri = f"file:///work/failing{len(client.messages)}.py"  # not one the typed-ahead cache could answer
    open_document(client, uri, PREFIX)
    with pytest.raises(JsonRpcException) as failure:
        await inline(client, uri, end_of(PREFIX))
    assert failure.value.code == REQUEST_FAILED
    assert all(fragment in str(failure.value) for fragment in fragments), failure.value


async def _expect_recovery(client: RecordingClient, options: dict) -> None:
    """The same settings sent again reload the (now fixed) model."""
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"codet5": options}))
    await client.wait_for(lambda c: c.state() == "ready", timeout=60)
    open_document(client, URI, PREFIX)
    result = await inline(client, URI, end_of(PREFIX))
    assert [item.insert_text for item in result.items] == [" a + b"]


# -- models on disk -------------------------------------------------------------------------
async def test_missing_model_directory_is_reported_and_recovers_once_it_exists(tmp_path, tiny_models):
    model = tmp_path / "models" / "llama"
    async with stdio_client(tmp_path / "cache", _options(model)) as (client, _):
        await _expect_failure(client, str(model), "does not exist")
        shutil.copytree(tiny_models.llama_int8, model)
        await _expect_recovery(client, _options(model))


def _truncate(model_bin: Path) -> None:
    os.truncate(model_bin, model_bin.stat().st_size // 2)


def _scramble_header(model_bin: Path) -> None:
    data = bytearray(model_bin.read_bytes())
    data[:64] = random.Random(0).randbytes(64)
    model_bin.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "reason"), [(_truncate, "invalid payload size"), (_scramble_header, "binary version")])
async def test_corrupt_model_bin_is_reported_and_recovers_when_restored(tmp_path, tiny_models, damage, reason):
    model = tmp_path / "llama"
    shutil.copytree(tiny_models.llama_int8, model)
    damage(model / "model.bin")
    async with stdio_client(tmp_path / "cache", _options(model)) as (client, _):
        await _expect_failure(client, "Cannot load model", reason)
        shutil.copy2(tiny_models.llama_int8 / "model.bin", model / "model.bin")
        await _expect_recovery(client, _options(model))


async def test_model_load_failure_mid_session_then_back(tmp_path, tiny_models):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models.llama_int8, broken)
    _truncate(broken / "model.bin")
    good = _options(tiny_models.llama_int8)
    async with stdio_client(tmp_path / "cache", good) as (client, _):
        open_document(client, URI, PREFIX)
        assert [i.insert_text for i in (await inline(client, URI, end_of(PREFIX))).items] == [" a + b"]
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"codet5": _options(broken)}))
        await _expect_failure(client, "Cannot load model", str(broken))
        await _expect_recovery(client, good)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_out_of_date_cached_conversion_is_converted_again(cache, tiny_models):
    """A conversion cached by an older format (or a leftover of a conversion that was killed) is not used as is."""
    first = resolve_model(str(tiny_models.llama_hf))
    assert first.backend is Backend.CTRANSLATE2 and first.path.is_relative_to(cache)
    metadata = read_metadata(first.path)
    (first.path / METADATA_FILE).write_text(json.dumps({**metadata, "format_version": FORMAT_VERSION - 1}))
    leftover = first.path.parent / f".{first.path.name}.abc123.partial"  # a conversion killed with SIGKILL
    leftover.mkdir()
    (leftover / "model.bin").write_bytes(b"half")
    again = resolve_model(str(tiny_models.llama_hf))
    assert again.path == first.path and again.backend is Backend.CTRANSLATE2
    assert read_metadata(again.path)["format_version"] == FORMAT_VERSION


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 256 KiB tmpfs: smaller than the tiny model's conversion (about 520 KiB)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_while_converting_leaves_nothing_and_says_so(small_disk, tiny_models, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(small_disk))
    with pytest.raises(CacheWriteError) as failure:
        resolve_model(str(tiny_models.llama_hf))
    message = str(failure.value)
    assert "No space left on device" in message and CACHE_ENV in message and str(small_disk / "models") in message
    assert [p for p in small_disk.rglob("*") if p.is_file()] == []  # nothing half-written
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)  # the user frees space
    recovered = resolve_model(str(tiny_models.llama_hf))
    assert recovered.backend is Backend.CTRANSLATE2 and recovered.path.is_relative_to(small_disk)


# -- the engine ------------------------------------------------------------------------------
def test_engine_raising_during_generation_is_an_error_response_and_the_server_recovers(tiny_models):
    """The real CTranslate2 generator, unloaded under the server, raises in the middle of a request."""
    host = ModelHost()
    served = PipeServer(create_server(host))
    try:
        served.request("initialize", {"capabilities": {}, "initializationOptions": _options(tiny_models.llama_int8)})
        served.notify("initialized", {})
        deadline = time.monotonic() + 60
        while served.request("workspace/executeCommand", {"command": "codet5.status"})["result"]["state"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        served.notify("textDocument/didOpen", {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": PREFIX}})
        params = {"textDocument": {"uri": URI}, "position": {"line": 1, "character": 10}, "context": {"triggerKind": 1}}
        generator = host._model._engine.generator
        generator.unload_model()
        failed = served.request("textDocument/inlineCompletion", params)
        assert "unloaded" in failed["error"]["message"].lower(), failed
        assert served.request("workspace/executeCommand", {"command": "codet5.status"})["result"]["state"] == "ready"
        generator.load_model()
        recovered = served.request("textDocument/inlineCompletion", params)
        assert [item["insertText"] for item in recovered["result"]["items"]] == [" a + b"]
    finally:
        served.close()
        host.close()


# -- clients ---------------------------------------------------------------------------------
def test_stdio_client_vanishing_mid_request_ends_the_server_cleanly(tmp_path, tiny_models):
    process = subprocess.Popen(SERVER, env=server_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stderr is not None

    def send(message: dict) -> None:
        body = json.dumps(message).encode()
        process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}, "initializationOptions": _options(tiny_models.llama_int8)}})
    send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": PREFIX}}})
    for request_id in range(2, 6):
        send({"jsonrpc": "2.0", "id": request_id, "method": "textDocument/inlineCompletion", "params": {
            "textDocument": {"uri": URI}, "position": {"line": 1, "character": 10}, "context": {"triggerKind": 1}}})
    process.stdin.close()  # the editor is gone, requests still in flight
    try:
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    log = process.stderr.read().decode(errors="replace")
    assert "Traceback" not in log and "Fatal" not in log, log


CLOSE_MID_GENERATION = """
import asyncio, sys, threading
from lsp_server.config import Settings
from lsp_server.model_host import ModelHost

host = ModelHost()
host.ensure(Settings(model=sys.argv[1], threads=1))
asyncio.run(host.ready())
started = threading.Event()

def job(model, stop):
    while not stop.is_set():
        for _ in model.complete("def add(a, b):\\n    return a + b\\n\\n\\n", max_new_tokens=400):
            started.set()
            if stop.is_set():
                break
    return "stopped"

future, _ = host.submit(0, job)
started.wait(60)
host.close()  # what the server does when its editor goes away
print(future.result(timeout=0))
"""


CLOSE_MID_LOAD = """
import sys
from lsp_server.config import Settings
from lsp_server.model_host import ModelHost

host = ModelHost()
host.ensure(Settings(model=sys.argv[1], threads=1))
host.close()  # while the model is still loading
print(host.status.state.value)
"""


@pytest.mark.parametrize(("script", "printed"), [(CLOSE_MID_GENERATION, "stopped"), (CLOSE_MID_LOAD, "ready")])
def test_closing_the_host_mid_generation_or_load_exits_cleanly(tiny_models, script, printed):
    """Deterministic forms of the test above: a real CTranslate2 generation runs, or a model
    loads, when the host closes (both aborted the process before)."""
    done = subprocess.run([sys.executable, "-c", script, str(tiny_models.llama_int8)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == printed
    assert "terminate called" not in done.stderr and "Traceback" not in done.stderr, done.stderr


async def _raw_tcp_request(port: int, messages: list[dict], *, abort: bool) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for message in messages:
        body = json.dumps(message).encode()
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    if abort:
        writer.transport.abort()  # RST, mid-request
    else:
        writer.close()


def _session_messages(options: dict | None) -> list[dict]:
    return [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}, "initializationOptions": options}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": PREFIX}}},
        {"jsonrpc": "2.0", "id": 2, "method": "textDocument/inlineCompletion", "params": {
            "textDocument": {"uri": URI}, "position": {"line": 1, "character": 10}, "context": {"triggerKind": 1}}},
    ]


async def _good_client_completes(port: int) -> None:
    client = RecordingClient()
    await client.start_tcp("127.0.0.1", port)
    try:
        await initialize(client, None)
        open_document(client, URI, PREFIX)
        result = await inline(client, URI, end_of(PREFIX))
        assert [item.insert_text for item in result.items] == [" a + b"]
    finally:
        await close(client)


GARBAGE = [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    bytes.fromhex("160301020001000200") + random.Random(1).randbytes(500),  # a TLS ClientHello, more or less
    b"Content-Length: -5\r\n\r\n{}",
    b"Content-Length: abc\r\n\r\n{}",
    b"Content-Length: 10\r\n\r\n{not json}",
    b"Content-Length: 12\r\n\r\n\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4",
    b"Content-Length: 2\r\n\r\n[]",
    b"\r\n\r\n\r\n" * 1000,
    b"Content-Length: 99999999999\r\n\r\n{",  # waits for a body that never comes
]


async def test_tcp_clients_that_vanish_or_send_garbage_leave_the_daemon_serving_others(tmp_path, tiny_models):
    process, port = await start_daemon(tmp_path, "--model", str(tiny_models.llama_int8), "--threads", "1")
    try:
        await _good_client_completes(port)
        daemon = psutil.Process(process.pid)
        threads_before = daemon.num_threads()
        for round_ in range(6):  # disconnects in the middle of a request, with and without a clean close
            await _raw_tcp_request(port, _session_messages(None), abort=round_ % 2 == 0)
        rng = random.Random(7)
        garbage = [*GARBAGE, *(rng.randbytes(rng.randrange(1, 4000)) for _ in range(20))]
        writers = []
        for payload in garbage:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await writer.drain()
            writers.append(writer)
        await _good_client_completes(port)  # while the garbage connections are still open
        for writer in writers:
            writer.transport.abort()
        await asyncio.sleep(1)
        await _good_client_completes(port)
        assert process.returncode is None
        assert daemon.num_threads() <= threads_before + 2  # no thread left behind per session
    finally:
        process.terminate()
        await process.wait()
