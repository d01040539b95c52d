"""The server on an ONNX Runtime model (a tiny random Qwen2 GGUF built for it), driven by a real LSP
client: completions come back, and a request after one more typed character continues the KV cache
of the one before it (`codet5.status`'s prompt cache counts the reused ids)."""

from __future__ import annotations

import pytest
from lsprotocol import types

from inference.models.convert import convert_gguf_to_onnx
from tests.lsp_harness import end_of, inline, open_document, stdio_client
from tests.tiny_gguf import train_bpe_tokenizer, write_random_gguf

SOURCE = "import os\n\n\ndef list_files(path):\n    return os.listdir(path)\n\n\ndef count(path):\n    return len("


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-e2e")
    return convert_gguf_to_onnx(write_random_gguf(root / "tiny.gguf", train_bpe_tokenizer()), root / "model")


async def test_a_typed_character_continues_the_cached_prefix(onnx_model, tmp_path):
    options = {"model": str(onnx_model), "completionMode": "line", "debounceMs": 0, "speculative": False}
    async with stdio_client(tmp_path / "cache", options, "--threads", "1") as (client, _):
        await client.wait_for(lambda c: c.state() == "ready", timeout=120)
        assert client.statuses[-1]["runtime"] == "onnxruntime"  # the status says what runs the model
        uri = "file:///work/count.py"
        open_document(client, uri, SOURCE)
        first = await inline(client, uri, end_of(SOURCE))
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(end_of(SOURCE), end_of(SOURCE)), text="o")],
        ))
        second = await inline(client, uri, end_of(SOURCE + "o"))
        status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))
    assert isinstance(first, types.InlineCompletionList) and isinstance(second, types.InlineCompletionList)
    cache = status["promptCache"]
    assert cache["fills"] >= 1 and cache["hits"] >= 1
    assert cache["reused_ids"] > cache["computed_ids"] / 2  # the second prompt re-read only its tail


async def test_a_4bit_build_runs_with_compute_type_int4(tmp_path):
    """`computeType: int4` is accepted and reported, and a 4-bit build answers completions."""
    model = convert_gguf_to_onnx(write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer()), tmp_path / "int4", "int4")
    options = {"model": str(model), "computeType": "int4", "completionMode": "line", "debounceMs": 0, "speculative": False}
    async with stdio_client(tmp_path / "cache", options, "--threads", "1") as (client, _):
        await client.wait_for(lambda c: c.state() == "ready", timeout=120)
        assert client.statuses[-1]["runtime"] == "onnxruntime" and client.statuses[-1]["computeType"] == "int4"
        uri = "file:///work/count.py"
        open_document(client, uri, SOURCE)
        assert isinstance(await inline(client, uri, end_of(SOURCE)), types.InlineCompletionList)
