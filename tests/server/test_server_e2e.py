"""End to end: pygls's LanguageClient drives the real server subprocess on a tiny trained model."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.lsp_harness import RawConnection, RecordingClient, close, end_of, initialize, inline, open_document, start_daemon, stdio_client

URI = "file:///work/example.py"
PREFIX = "def add(a, b):\n    return"


@pytest.fixture
def options(tiny_models) -> dict:
    return {"model": str(tiny_models.llama_int8), "threads": 1}


async def test_initialize_advertises_inline_and_classic_completion(tmp_path, options):
    async with stdio_client(tmp_path, options) as (client, result):
        caps = result.capabilities
        assert caps.inline_completion_provider is not None
        assert caps.completion_provider is not None
        assert result.server_info.name == "codet5-lsp"
        await client.wait_for(lambda c: c.state() == "ready")
        assert [s["state"] for s in client.statuses][:2] == ["idle", "loading"]
        await client.wait_for(lambda c: any(p.get("kind") == "end" for p in c.progress))
        assert client.progress[0]["kind"] == "begin"


async def test_inline_completion_writes_the_memorized_line(tmp_path, options):
    async with stdio_client(tmp_path, options) as (client, _):
        open_document(client, URI, PREFIX)
        result = await inline(client, URI, end_of(PREFIX))
        assert [item.insert_text for item in result.items] == [" a + b"]
        assert result.items[0].range.start == end_of(PREFIX)


async def test_did_change_is_followed_and_typed_ahead_is_served_from_cache(tmp_path, options):
    async with stdio_client(tmp_path, options) as (client, _):
        open_document(client, URI, "def add(a, b):\n    ret")
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=1, character=7), end=types.Position(line=1, character=7)), text="urn")],
        ))
        first = await inline(client, URI, end_of(PREFIX))
        assert first.items[0].insert_text == " a + b"
        typed = PREFIX + " a +"
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=3),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=typed)],
        ))
        second = await inline(client, URI, end_of(typed))
        assert [item.insert_text for item in second.items] == [" b"]
        status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))
        assert status["cache"]["hits"] == 1


async def test_classic_completion_fallback_covers_the_word_being_typed(tmp_path, options):
    async with stdio_client(tmp_path, options) as (client, _):
        text = "def add(a, b):\n    retu"
        open_document(client, URI, text)
        result = await client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI), position=end_of(text)))
        (item,) = result.items
        assert item.text_edit.new_text == "return a + b"
        assert item.text_edit.range.start == types.Position(line=1, character=4)
        assert item.filter_text.startswith("retu")


async def test_client_cancellation_and_latest_request_wins(tmp_path, options):
    async with stdio_client(tmp_path, options) as (client, _):
        open_document(client, URI, PREFIX)
        await client.wait_for(lambda c: c.state() == "ready")
        older = asyncio.ensure_future(inline(client, URI, end_of(PREFIX)))
        newer = asyncio.ensure_future(inline(client, URI, end_of(PREFIX)))
        older_result, newer_result = await asyncio.gather(older, newer)
        assert newer_result.items[0].insert_text == " a + b"
        assert not older_result.items or older_result.items[0].insert_text == " a + b"

        cancelled = asyncio.ensure_future(inline(client, URI, types.Position(line=0, character=4)))
        await asyncio.sleep(0)
        cancelled.cancel()  # pygls's client sends $/cancelRequest
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        again = await inline(client, URI, end_of(PREFIX))
        assert again.items[0].insert_text == " a + b"


async def test_bad_requests_get_errors_and_the_server_keeps_serving(tmp_path, options):
    async with stdio_client(tmp_path, options) as (client, _):
        with pytest.raises(JsonRpcException, match="not open"):
            await inline(client, "file:///nowhere.py", types.Position(line=0, character=0))
        open_document(client, URI, PREFIX)
        with pytest.raises(JsonRpcException, match="outside"):
            await inline(client, URI, types.Position(line=40, character=0))
        # Past the end of a line means the end of that line (LSP), never an error or a bad edit.
        past = await inline(client, URI, types.Position(line=1, character=999))
        assert [i.insert_text for i in past.items] == [" a + b"]
        result = await inline(client, URI, end_of(PREFIX))
        assert result.items[0].insert_text == " a + b"


async def test_malformed_messages_get_json_rpc_errors(tmp_path, options):
    raw = await RawConnection.start(tmp_path)
    try:
        raw.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}, "initializationOptions": options}})
        assert "capabilities" in (await raw.response(1))["result"]
        raw.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        raw.send({"jsonrpc": "2.0", "id": 2, "method": "textDocument/inlineCompletion", "params": {"textDocument": 3}})
        assert (await raw.response(2))["error"]["code"] == -32602
        raw.send({"jsonrpc": "2.0", "id": 3, "method": "codet5/noSuchMethod", "params": {}})
        assert (await raw.response(3))["error"]["code"] == -32601
        raw.send_bytes(b"{this is not json")
        assert (await raw.response(None))["error"]["code"] == -32700
        raw.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": URI, "languageId": "python", "version": 1, "text": PREFIX}}})
        raw.send({"jsonrpc": "2.0", "id": 4, "method": "textDocument/inlineCompletion", "params": {
            "textDocument": {"uri": URI}, "position": {"line": 1, "character": 10},
            "context": {"triggerKind": 1}}})
        assert (await raw.response(4))["result"]["items"][0]["insertText"] == " a + b"
    finally:
        await raw.close()


async def test_invalid_settings_are_reported_and_defaults_used(tmp_path, options):
    async with stdio_client(tmp_path, {**options, "maxNewTokens": -3, "completionMode": "sideways"}) as (client, _):
        await client.wait_for(lambda c: len(c.messages) >= 2)
        text = " ".join(m.message for m in client.messages)
        assert "maxNewTokens" in text and "completionMode" in text
        open_document(client, URI, PREFIX)
        result = await inline(client, URI, end_of(PREFIX))
        assert result.items[0].insert_text == " a + b"


async def test_missing_model_is_a_clear_error_not_a_crash(tmp_path, options):
    missing = str(tmp_path / "no-such-model")
    async with stdio_client(tmp_path, {"model": missing}) as (client, _):
        await client.wait_for(lambda c: c.state() == "error")
        # The error message follows the status notification.
        await client.wait_for(lambda c: any(m.type == types.MessageType.Error and "no-such-model" in m.message for m in c.messages), 10)
        open_document(client, URI, PREFIX)
        with pytest.raises(JsonRpcException, match="no-such-model"):
            await inline(client, URI, end_of(PREFIX))
        # Fixing the setting recovers without a restart.
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"codet5": options}))
        await client.wait_for(lambda c: c.state() == "ready")
        result = await inline(client, URI, end_of(PREFIX))
        assert result.items[0].insert_text == " a + b"


async def test_tcp_daemon_serves_two_clients_with_one_model(tmp_path, tiny_models):
    process, port = await start_daemon(tmp_path, "--model", str(tiny_models.llama_int8), "--threads", "1")
    try:
        clients = [RecordingClient(), RecordingClient()]
        for client in clients:
            await client.start_tcp("127.0.0.1", port)
            await initialize(client, None)
            open_document(client, URI, PREFIX)
        results = await asyncio.gather(*(inline(c, URI, end_of(PREFIX)) for c in clients))
        assert [r.items[0].insert_text for r in results] == [" a + b", " a + b"]
        await close(clients[0])  # one editor leaving ends only its own session
        result = await inline(clients[1], URI, end_of(PREFIX))
        assert result.items[0].insert_text == " a + b"
        await close(clients[1])
        assert process.returncode is None
    finally:
        process.terminate()
        await process.wait()
