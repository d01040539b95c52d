"""The embedded default model (SmolLM2-135M, converted to CTranslate2 int8) through the real server.

Tests never download: the model must already be in the cache (`codet5-lsp models pull default`,
which `.ci/run` runs before the tests). Without it the test skips, unless
CODET5_LSP_REQUIRE_EMBEDDED=1 says it must run.
"""

from __future__ import annotations

import os

import pytest

from inference.cache import cache_root
from inference.embedded import embedded_model_dir, is_embedded_model_current
from tests.lsp_harness import end_of, inline, open_document, stdio_client

SOURCE = "import os\n\n\ndef list_files(path):\n    return os.li"


@pytest.fixture
def embedded_cache() -> object:
    if not is_embedded_model_current(embedded_model_dir()):
        message = f"the embedded model is not in {cache_root()}: run `codet5-lsp models pull default`"
        if os.environ.get("CODET5_LSP_REQUIRE_EMBEDDED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return cache_root()


async def test_default_model_completes_a_real_line_over_lsp(embedded_cache):
    async with stdio_client(embedded_cache, None, "--threads", "2") as (client, _):
        await client.wait_for(lambda c: c.state() == "ready", timeout=300)
        assert client.statuses[-1]["model"] == "smollm2-135m"
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
