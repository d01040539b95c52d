"""A session offers its other open documents to completions: most recently used first, the
document being completed, closed ones and disabled languages left out, none with `otherFiles` off."""

from __future__ import annotations

from typing import Any

from lsp_server.model_host import ModelHost
from lsp_server.server import create_server
from tests.reliability.test_document_sync import PipeServer


def _open(served: PipeServer, uri: str, text: str, language: str = "python") -> None:
    served.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}})


def _sync(served: PipeServer) -> dict[str, Any]:
    """A request's answer: every notification sent before it has been handled."""
    return served.request("workspace/executeCommand", {"command": "codet5.status"})


def test_a_session_offers_its_other_open_documents_most_recently_used_first(tiny_models):
    host = ModelHost()
    served = PipeServer(create_server(host))
    try:
        served.request("initialize", {"capabilities": {}, "initializationOptions": {
            "model": str(tiny_models.llama_int8), "threads": 1, "disabledLanguages": ["markdown"]}})
        served.notify("initialized", {})
        a, b, c, notes = (f"file:///w/{name}" for name in ("a.py", "b.py", "c.py", "notes.md"))
        for uri in (a, b, c):
            _open(served, uri, f"# {uri}\n")
        _open(served, notes, "# secrets\n", "markdown")
        served.notify("textDocument/didChange", {"textDocument": {"uri": a, "version": 2},
                                                  "contentChanges": [{"text": "# a, edited\n"}]})
        _sync(served)
        offered = served.server.other_files(c)
        assert [(f.uri, f.text) for f in offered] == [(a, "# a, edited\n"), (b, f"# {b}\n")]
        served.notify("textDocument/didClose", {"textDocument": {"uri": a}})
        _sync(served)
        assert [f.uri for f in served.server.other_files(c)] == [b]
        served.notify("workspace/didChangeConfiguration", {"settings": {"otherFiles": False}})
        _sync(served)
        assert served.server.other_files(c) == ()
    finally:
        served.close()
        host.close()
