"""The server on an ONNX Runtime model (a tiny random Qwen2 GGUF built for it), driven by a real LSP
client: completions come back, and a request after one more typed character continues the KV cache
of the one before it (`codet5.status`'s prompt cache counts the reused ids)."""

from __future__ import annotations

import asyncio

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


@pytest.fixture(scope="module")
def onnx_float32_model(onnx_model):
    """The same model in float32: its passes give the same numbers however a prompt's ids are split
    into passes (an int8 pass quantizes its rows with one scale, so there a split moves near ties)."""
    return convert_gguf_to_onnx(onnx_model.parent / "tiny.gguf", onnx_model.parent / "model-float32", "float32")


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


async def _status(client) -> dict:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))


async def _prewarms(client, count: int, timeout: float = 60.0) -> dict:
    """The status once `count` prewarms have reached the model (`prewarm.prefill`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (status := await _status(client))["stages"].get("prewarm.prefill", 0) < count:
        assert asyncio.get_running_loop().time() < deadline, status["stages"]
        await asyncio.sleep(0.1)
    return status


async def test_the_prompt_at_the_cursor_is_computed_while_the_editor_is_quiet(onnx_model, tmp_path):
    """Once the editor is quiet, the prompt of the document the user is in runs into the prompt cache:
    at the end of a document just opened, at the cursor `codet5/cursor` reports; a request there
    re-reads only its last id. Reports that name no open document or no position in it are dropped,
    and the server goes on."""
    options = {"model": str(onnx_model), "completionMode": "line", "debounceMs": 0, "speculative": False}
    async with stdio_client(tmp_path / "cache", options, "--threads", "1") as (client, _):
        await client.wait_for(lambda c: c.state() == "ready", timeout=120)
        uri, other = "file:///work/count.py", "file:///work/other.py"
        open_document(client, uri, SOURCE)
        opened = (await _prewarms(client, 1))["promptCache"]
        assert opened["prefilled_ids"] > 10 and opened["fills"] == 0
        for bad in ({"textDocument": {"uri": "file:///work/nowhere.py"}, "position": {"line": 0, "character": 0}},
                    {"textDocument": {"uri": uri}, "position": {"line": 99, "character": 0}},
                    {"textDocument": {"uri": uri}, "position": {"line": -1, "character": 2}}, {"uri": uri}, [1, 2], None):
            client.protocol.notify("codet5/cursor", bad)
        open_document(client, other, "class Stack:\n    def push(self, item):\n        self.items.append(item)\n")
        second = (await _prewarms(client, 2))["promptCache"]
        assert second["prefilled_ids"] > opened["prefilled_ids"]  # the document opened last
        middle = types.Position(line=4, character=len("    return"))
        client.protocol.notify("codet5/cursor", {"textDocument": {"uri": uri}, "position": {"line": 4, "character": middle.character}})
        before = (await _prewarms(client, 3))["promptCache"]  # back in the first: its end's state holds this prompt
        suggestion = await inline(client, uri, middle)
        after = (await _status(client))["promptCache"]
    assert isinstance(suggestion, types.InlineCompletionList)
    assert after["hits"] - before["hits"] >= 1 and after["fills"] == before["fills"] == 0
    assert after["computed_ids"] - before["computed_ids"] <= 2  # the request ran its last id (and the healed one's)


async def test_no_prewarm_when_it_is_off(onnx_model, tmp_path):
    options = {"model": str(onnx_model), "completionMode": "line", "debounceMs": 0, "speculative": False, "prewarm": False}
    async with stdio_client(tmp_path / "cache", options, "--threads", "1") as (client, _):
        await client.wait_for(lambda c: c.state() == "ready", timeout=120)
        uri = "file:///work/count.py"
        open_document(client, uri, SOURCE)
        client.protocol.notify("codet5/cursor", {"textDocument": {"uri": uri}, "position": {"line": 4, "character": 3}})
        await asyncio.sleep(1.5)  # several times the quiet time a prewarm waits for
        status = await _status(client)
        await inline(client, uri, end_of(SOURCE))
    assert status["promptCache"]["prefilled_ids"] == 0 and status["promptCache"]["held"] == 0
    assert "prewarm.prefill" not in status["stages"]


async def test_a_prewarm_cut_short_by_another_session_s_job_goes_on_once_quiet(onnx_model, monkeypatch):
    """A prewarm does not start while another session's job waits, and stops between passes
    whenever one does, so that job never waits for more than one pass; what it ran is kept, it is
    not taken for done, and once the editor is quiet again it goes on from there to the end of the prompt."""
    import threading

    from pygls.workspace import Workspace

    from inference.engines import onnx_engine
    from lsp_server.documents import LspWorkspace
    from lsp_server import session as session_module
    from lsp_server.config import Settings
    from lsp_server.model_host import ModelHost
    from lsp_server.session import Codet5Server

    monkeypatch.setattr(onnx_engine, "PREFILL_CHUNK_IDS", 8)
    monkeypatch.setattr(session_module, "PREWARM_IDLE_S", 0.05)
    settings = Settings(model=str(onnx_model), threads=1)
    host = ModelHost()
    host.ensure(settings)
    session = Codet5Server(host, base=settings)
    session.loop = asyncio.get_running_loop()
    session.protocol._workspace = LspWorkspace.like(Workspace(None))
    uri, text = "file:///work/long.py", SOURCE + "\n" + "\n".join(f"value_{i} = count('{i}')" for i in range(12))
    session.workspace.put_text_document(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
    between_passes: list[bool] = []  # the model's checks, on the host's thread; the stages check on the loop's

    def more_urgent_waiting(priority: int) -> bool:
        if threading.current_thread() is threading.main_thread():
            return next(waiting_at_first, False)
        between_passes.append(len(between_passes) == 1)  # another session's job queued during the first pass
        return between_passes[-1]

    waiting_at_first = iter([True, True])  # another session's jobs at first: nothing of the prewarm runs yet
    monkeypatch.setattr(host, "more_urgent_waiting", more_urgent_waiting)
    try:
        model = await host.ready()
        session.moved(uri)
        deadline = asyncio.get_running_loop().time() + 20
        while session._warmed is None:
            assert asyncio.get_running_loop().time() < deadline, (session.stages, between_passes, model.prompt_cache_stats())
            await asyncio.sleep(0.02)
        stats = model.prompt_cache_stats()
    finally:
        host.close()
    assert next(waiting_at_first, None) is None and session.stages["prewarm.syntax"] == 2  # no stage ran while others waited
    assert between_passes[:2] == [False, True] and session.stages["prewarm.prefill"] == 2  # cut after one pass, then again
    assert stats["held"] == 1 and stats["prefilled_ids"] > 8 * 3  # one state: the second went on from the first's 8 ids
    assert session.last_prewarm["uri"] == uri


async def test_a_code_action_at_a_bare_cursor_tells_the_prewarm_where_the_cursor_rests(onnx_model, tmp_path):
    """Clients without `codet5/cursor` ask for code actions where the cursor rests (VS Code, Helix):
    an empty range moves the prewarm there; a selection does not, and the same place reported again
    starts nothing."""
    options = {"model": str(onnx_model), "completionMode": "line", "debounceMs": 0, "speculative": False}
    async with stdio_client(tmp_path / "cache", options, "--threads", "1") as (client, _):
        await client.wait_for(lambda c: c.state() == "ready", timeout=120)
        uri = "file:///work/count.py"
        open_document(client, uri, SOURCE)
        opened = await _prewarms(client, 1)

        async def code_actions(start: types.Position, end: types.Position) -> None:
            await client.text_document_code_action_async(types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start, end),
                context=types.CodeActionContext(diagnostics=[])))

        await code_actions(types.Position(line=1, character=0), types.Position(line=4, character=3))
        await asyncio.sleep(1.0)  # more than twice the quiet time a prewarm waits for
        selected = await _status(client)
        await code_actions(types.Position(line=4, character=10), types.Position(line=4, character=10))
        moved = await _prewarms(client, 2)
        client.protocol.notify("codet5/cursor", {"textDocument": {"uri": uri}, "position": {"line": 4, "character": 10}})
        await asyncio.sleep(1.0)
        again = await _status(client)
    assert opened["prewarm"]["line"] > 4  # first at the end of the document
    assert selected["stages"].get("prewarm.syntax") == 1 and selected["prewarm"] == opened["prewarm"]
    assert moved["prewarm"] == {"uri": uri, "line": 4, "character": 10}
    assert again["stages"]["prewarm.syntax"] == moved["stages"]["prewarm.syntax"] == 2


@pytest.mark.parametrize("prewarm", [True, False])
async def test_a_typed_request_computes_its_prompt_while_it_waits_out_its_debounce(onnx_model, tmp_path, prewarm):
    """With `prewarm` on, an automatic request runs its stages and its prompt's prefill during its
    debounce, so its generation re-reads only the last id; with it off, nothing runs before the
    debounce is over and the generation reads the whole prompt."""
    options = {"model": str(onnx_model), "completionMode": "line", "debounceMs": 800, "speculative": False, "prewarm": prewarm}
    async with stdio_client(tmp_path / "cache", options, "--threads", "1") as (client, _):
        await client.wait_for(lambda c: c.state() == "ready", timeout=120)
        uri = "file:///work/count.py"
        open_document(client, uri, SOURCE)
        suggestion = await inline(client, uri, end_of(SOURCE))  # before the editor has been quiet for a prewarm
        status = await _status(client)
    assert isinstance(suggestion, types.InlineCompletionList)
    cache = status["promptCache"]
    assert "prewarm.prefill" not in status["stages"] and status["stages"]["context"] == 1
    if prewarm:
        assert status["stages"]["prefill"] == 1 and cache["prefilled_ids"] > 10
        assert cache["computed_ids"] <= 2  # the last id (and the healed one's)
    else:
        assert "prefill" not in status["stages"] and cache["prefilled_ids"] == 0
        assert cache["computed_ids"] > 10


@pytest.mark.parametrize("cut", ["deadline", "yields"])
async def test_a_prefill_while_waiting_stops_when_the_debounce_ends_and_the_generation_continues_it(onnx_float32_model, monkeypatch, cut):
    """The prefill during a debounce stops between passes once the debounce is over (a fake clock
    passes its end during the second pass) or once `Ahead.yields()` says a more urgent job waits;
    the generation continues from what it ran and writes what a request without it writes; the
    context and prompt stages run once."""
    from dataclasses import replace

    from inference.completion.options import CompletionOptions
    from inference.completion.pipeline import Ahead, CompletionPipeline, CompletionRequest, DirectWorker
    from inference.engines import onnx_engine
    from inference.engines.model import CodeModel

    monkeypatch.setattr(onnx_engine, "PREFILL_CHUNK_IDS", 8)
    text = "\n".join(f"value_{i} = count('{i}')" for i in range(6)) + "\n" + SOURCE
    lines = text.split("\n")
    request = CompletionRequest("file:///work/long.py", text, len(lines) - 1, len(lines[-1]), "python",
                                CompletionOptions(mode="line", debounce_ms=100), automatic=True)
    now, checks = [0.0], []

    def yields() -> bool:
        checks.append(now[0])
        if cut == "yields":
            return len(checks) == 3  # another session's job queued while the second pass ran
        if len(checks) == 2:
            now[0] = 1.0  # the debounce ends while the second pass runs
        return False

    async def sleep(seconds: float) -> None:
        now[0] += seconds  # (the model runs in this thread: the prefill ends before this wait starts)

    model, events = CodeModel(str(onnx_float32_model), "cpu", "float32", 1), []
    pipeline = CompletionPipeline(clock=lambda: now[0], sleep=sleep)
    waited = await pipeline.suggest(request, DirectWorker(model), trace=events.append, ahead=Ahead(DirectWorker(model), yields))
    stats = model.prompt_cache_stats()
    cold_model = CodeModel(str(onnx_float32_model), "cpu", "float32", 1)
    cold = await CompletionPipeline().suggest(replace(request, automatic=False), DirectWorker(cold_model))
    stages = [e.stage for e in events]
    assert stages.index("prefill") < stages.index("debounce") < stages.index("generate")
    assert stages.count("context") == stages.count("prompt") == 1
    assert len(checks) == (2 if cut == "deadline" else 3) and stats["prefilled_ids"] == 16  # two passes of 8, then the cut
    assert stats["computed_ids"] == cold_model.prompt_cache_stats()["computed_ids"] - 16
    assert (waited and waited.text) == (cold and cold.text)
