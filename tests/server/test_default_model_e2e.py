"""The embedded default models (Qwen2.5-Coder-0.5B built for ONNX Runtime int8, as the server
runs it on a CPU, and the summarizer assembled from SmolLM2-135M) through the real server.

Tests never download: the models must already be in the cache (`codet5-lsp models pull default`
and `codet5-lsp models pull default-summarizer`, which `.ci/run` runs before the tests). Without
them the tests skip, unless CODET5_LSP_REQUIRE_EMBEDDED=1 says they must run.
"""

from __future__ import annotations

import os

import pytest
from lsprotocol import types

from inference.models.cache import cache_root
from inference.models.embedded import (
    DEFAULT_EMBEDDED,
    ONNX_RUNTIME,
    SUMMARIZER_DELTA,
    embedded_model_dir,
    embedded_summarizer_dir,
    is_embedded_model_current,
    is_embedded_summarizer_current,
)
from tests.lsp_harness import end_of, inline, open_document, stdio_client

SOURCE = "import os\n\n\ndef list_files(path):\n    return os.li"


def _required(present: bool, message: str) -> None:
    if not present:
        if os.environ.get("CODET5_LSP_REQUIRE_EMBEDDED") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def embedded_cache() -> object:
    _required(is_embedded_model_current(embedded_model_dir(DEFAULT_EMBEDDED, ONNX_RUNTIME)),
              f"the embedded model is not in {cache_root()}: run `codet5-lsp models pull default`")
    return cache_root()


@pytest.fixture
def summarizer_cache(embedded_cache) -> object:
    assert SUMMARIZER_DELTA.is_file(), "the package ships no summarizer delta"
    _required(is_embedded_summarizer_current(embedded_summarizer_dir()),
              f"the embedded summarizer is not in {cache_root()}: run `codet5-lsp models pull default-summarizer`")
    return embedded_cache


async def test_default_model_completes_a_real_line_over_lsp(embedded_cache):
    async with stdio_client(embedded_cache, None, "--threads", "2") as (client, _):
        await client.wait_for(lambda c: c.state() == "ready", timeout=300)
        assert client.statuses[-1]["model"] == DEFAULT_EMBEDDED
        uri = "file:///work/files.py"
        open_document(client, uri, SOURCE)
        result = await inline(client, uri, end_of(SOURCE))
        (item,) = result.items
        # A real model continues the partial identifier (token healing) into a sensible call.
        assert item.insert_text.startswith("stdir(")
        compile(SOURCE + item.insert_text + "\n", "files.py", "exec")


def test_default_model_continues_after_a_whole_long_name(embedded_cache, monkeypatch):
    """A prompt ending right after a long rare name (CodeXGLUE py150 sample 5): cut whole, the
    name had to be re-written token for token and the completion came back empty."""
    from inference import CodeModel

    monkeypatch.setenv("CODET5_LSP_CACHE", str(embedded_cache))
    prefix = ("class EGCBaseClientMsg:\n    k_EMsgGCClientWelcome = 4004\n    k_EMsgGCServerWelcome")
    model = CodeModel("default", local_files_only=True, cpu_threads=2)
    assert "".join(model.complete(prefix, max_new_tokens=8)).startswith(" = 40")


def test_embedded_summarizer_writes_a_sentence(summarizer_cache, monkeypatch):
    from inference import CodeModel

    monkeypatch.setenv("CODET5_LSP_CACHE", str(summarizer_cache))
    model = CodeModel("default-summarizer", local_files_only=True, cpu_threads=2)
    assert model.can_summarize and not model.can_complete
    summary = model.summarize("def add_numbers(a, b):\n    return a + b\n").read().strip()
    assert len(summary.split()) >= 3 and summary[0].isalpha(), summary


async def test_default_model_hover_uses_the_embedded_summarizer(summarizer_cache):
    code = "def read_lines(path):\n    with open(path) as f:\n        return f.read().splitlines()\n"
    async with stdio_client(summarizer_cache, None, "--threads", "2") as (client, _):
        await client.wait_for(lambda c: c.state() == "ready", timeout=300)
        uri = "file:///work/lines.py"
        open_document(client, uri, code)
        hover = await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=6)))
        text = hover.contents.value
        assert text.startswith("```python\ndef read_lines(path):\n```\n\n")
        summary = text.split("```\n\n", 1)[1]
        assert len(summary.split()) >= 3 and any(c.isalpha() for c in summary), summary
