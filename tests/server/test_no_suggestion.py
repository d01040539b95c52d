"""Why no suggestion: every empty answer has one reason from a closed set, which `codet5.status`
counts and lists, `codet5/noSuggestion` and `$/logTrace` report, and `codet5-lsp complete`
prints. Each reason is produced end to end by the real server on the tiny models (the pure
post-processing ones also unit by unit)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import lsp_server.session as session_module
from lsp_server.model_host import ModelHost, load_code_model
from lsp_server.requests.rules import PRIORITY_COMPLETION
from inference.completion.no_suggestion import NoSuggestion, NoSuggestionLog
from inference.completion.postprocess.chain import postprocess, postprocess_explained
from inference.completion.request import CompletionRequestText
from lsp_server.server import create_server
from tests.reliability.test_document_sync import PipeServer

URI = "file:///work/why.py"
ADD = "def add(a, b):\n    return"  # the tiny Llama writes " a + b" here


# -- post-processing, unit by unit -----------------------------------------------------------
@pytest.mark.parametrize(("raw", "request_text", "reason"), [
    ("", CompletionRequestText(line_prefix="x = "), NoSuggestion.MODEL_WROTE_NOTHING),
    ("\nfoo()", CompletionRequestText(line_prefix="x = "), NoSuggestion.STOP_RULE_KEPT_NOTHING),
    ("   ", CompletionRequestText(line_prefix="x = "), NoSuggestion.EMPTY_AFTER_POSTPROCESSING),
    ("return a + b", CompletionRequestText(line_prefix="    ", line_suffix="return a + b"), NoSuggestion.DUPLICATES_SUFFIX),
    (")", CompletionRequestText(line_prefix="x = 1"), NoSuggestion.UNBALANCED),
    ("y = 2", CompletionRequestText(line_prefix="    ", prev_lines=["    y = 2"]), NoSuggestion.REPEATS_ABOVE),
])
def test_the_step_that_left_nothing_is_the_reason(raw, request_text, reason):
    assert postprocess_explained(raw, request_text) is reason
    assert postprocess(raw, request_text) is None


def test_a_suggestion_is_returned_as_text():
    assert postprocess_explained(" a + b\n\n", CompletionRequestText(line_prefix="    return")) == " a + b"


def test_the_log_counts_every_reason_and_keeps_the_last_few():
    log = NoSuggestionLog(keep=2)
    for line in range(3):
        log.record(NoSuggestion.SUPERSEDED, URI, line, 0)
    log.record(NoSuggestion.LANGUAGE_DISABLED, URI, 9, 1)
    assert log.to_json() == {
        "counts": {"superseded": 3, "language-disabled": 1},
        "recent": [
            {"reason": "superseded", "message": NoSuggestion.SUPERSEDED.description, "uri": URI,
             "position": {"line": 2, "character": 0}},
            {"reason": "language-disabled", "message": NoSuggestion.LANGUAGE_DISABLED.description, "uri": URI,
             "position": {"line": 9, "character": 1}},
        ],
    }


def test_every_reason_has_a_distinct_name_and_a_description():
    assert len({reason.value for reason in NoSuggestion}) == len(NoSuggestion)
    assert all(reason.description for reason in NoSuggestion)


# -- the real server ---------------------------------------------------------------------------
def _start(host: ModelHost, options: dict[str, Any], **initialize: Any) -> PipeServer:
    served = PipeServer(create_server(host))
    served.request("initialize", {"capabilities": {}, "initializationOptions": options, **initialize})
    served.notify("initialized", {})
    return served


def _status(served: PipeServer) -> dict[str, Any]:
    return served.request("workspace/executeCommand", {"command": "codet5.status"})["result"]


def _wait_for(served: PipeServer, ready: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not ready(status := _status(served)):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def _open(served: PipeServer, uri: str, text: str, language: str = "python") -> None:
    served.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}})


def _params(uri: str, line: int, character: int) -> dict[str, Any]:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": 2}}


def _items(served: PipeServer, uri: str, line: int, character: int) -> list[str]:
    response = served.request("textDocument/inlineCompletion", _params(uri, line, character))
    return [item["insertText"] for item in response["result"]["items"]]


def _send(served: PipeServer, request_id: int, uri: str, line: int, character: int) -> None:
    """An inline completion request whose response nobody waits for (it is superseded)."""
    served.send({"jsonrpc": "2.0", "id": request_id, "method": "textDocument/inlineCompletion",
                 "params": _params(uri, line, character)})


def _last(served: PipeServer) -> dict[str, Any]:
    return _status(served)["noSuggestion"]["recent"][-1]


def _reason_of_empty_answer(served: PipeServer, uri: str, text: str, line: int, character: int, language: str = "python") -> str:
    """Open `text`, ask at (line, character), check the answer is empty; the reason the server gives."""
    _open(served, uri, text, language)
    assert _items(served, uri, line, character) == []
    event = _last(served)
    assert event["uri"] == uri and event["position"] == {"line": line, "character": character}, event
    notified = [n["params"] for n in served.notifications if n["method"] == "codet5/noSuggestion"]
    assert notified[-1] == event  # the client was told as the request was answered
    return event["reason"]


@pytest.fixture(scope="module")
def ready_server(tiny_models):
    host = ModelHost()
    served = _start(host, {"model": str(tiny_models.llama_int8), "threads": 1, "disabledLanguages": ["markdown"]})
    _wait_for(served, lambda status: status["state"] == "ready")
    yield served, host
    served.close()
    host.close()


@pytest.mark.parametrize(("name", "text", "line", "character", "language", "reason"), [
    ("language", "# Title\n", 1, 0, "markdown", "language-disabled"),
    ("binary", "x = 1\x00\n", 1, 0, "python", "binary-document"),
    ("suffix", "def add(a, b):\n    return a + b\n", 1, 4, "python", "duplicates-suffix"),
    ("nothing", "def add(a, b):\n    return fib", 1, 14, "python", "model-wrote-nothing"),
    ("above", "class Counter:\n    def __init__(self):\n        self.count = 0\n\n    def increment(self):\n"
              "        self.count += 1\n        ", 6, 8, "python", "repeats-above"),
    ("brackets", "def add[a, b", 0, 12, "python", "unbalanced"),  # the model writes '):', which closes nothing
])
def test_each_reason_end_to_end(ready_server, name, text, line, character, language, reason):
    served, _ = ready_server
    assert _reason_of_empty_answer(served, f"file:///work/{name}.py", text, line, character, language) == reason


def test_the_stop_rule_keeping_nothing_end_to_end(ready_server):
    served, _ = ready_server
    served.notify("workspace/didChangeConfiguration", {"settings": {"codet5": {"completionMode": "line"}}})
    try:
        reason = _reason_of_empty_answer(served, "file:///work/stop.py", "def add(a, b):\n    return a + b", 1, 16)
    finally:
        served.notify("workspace/didChangeConfiguration", {"settings": {"codet5": {"completionMode": "auto"}}})
    assert reason == "stop-rule-kept-nothing"


def test_completions_off_end_to_end(ready_server):
    served, _ = ready_server
    served.notify("workspace/didChangeConfiguration", {"settings": {"codet5": {"enabled": False}}})
    try:
        reason = _reason_of_empty_answer(served, "file:///work/off.py", ADD, 1, 10)
    finally:
        served.notify("workspace/didChangeConfiguration", {"settings": {"codet5": {"enabled": True}}})
    assert reason == "completions-off"
    _open(served, "file:///work/on.py", ADD)
    assert _items(served, "file:///work/on.py", 1, 10) == [" a + b"]


def test_a_document_too_large_end_to_end(ready_server, monkeypatch):
    served, _ = ready_server
    monkeypatch.setattr(session_module, "MAX_DOCUMENT_CHARS", len(ADD) - 1)
    assert _reason_of_empty_answer(served, "file:///work/large.py", ADD, 1, 10) == "document-too-large"


def test_superseded_while_the_model_is_busy(ready_server):
    served, host = ready_server
    busy = threading.Event()
    host.submit(PRIORITY_COMPLETION, lambda model, stop: busy.wait(60))  # holds the one worker
    _open(served, "file:///work/superseded.py", ADD)
    try:
        _send(served, 9001, "file:///work/superseded.py", 1, 10)
        _send(served, 9002, "file:///work/superseded.py", 1, 10)  # the first is superseded while it waits
        counts = _wait_for(served, lambda status: status["noSuggestion"]["counts"].get("superseded"))["noSuggestion"]["counts"]
    finally:
        busy.set()
    assert counts["superseded"] == 1 and "model-loading" not in counts


def test_status_counts_every_reason_seen(ready_server):
    served, _ = ready_server
    reasons = _status(served)["noSuggestion"]
    assert sum(reasons["counts"].values()) >= len(reasons["recent"]) > 0
    assert set(reasons["counts"]) <= {reason.value for reason in NoSuggestion}


def test_trace_logs_each_reason(ready_server):
    served, _ = ready_server
    served.notify("$/setTrace", {"value": "verbose"})
    try:
        _reason_of_empty_answer(served, "file:///work/traced.md", "# Title\n", 1, 0, "markdown")
    finally:
        served.notify("$/setTrace", {"value": "off"})
    traces = [n["params"] for n in served.notifications if n["method"] == "$/logTrace"]
    assert traces[-1]["message"] == "no suggestion at file:///work/traced.md:1:0: language-disabled"
    assert traces[-1]["verbose"] == NoSuggestion.LANGUAGE_DISABLED.description


def test_model_loading_when_superseded_before_the_model_is_ready(tiny_models):
    gate = threading.Event()

    def slow_load(settings, progress):  # the real load, held until the requests are in
        gate.wait(60)
        return load_code_model(settings, progress)

    host = ModelHost(slow_load)
    served = _start(host, {"model": str(tiny_models.llama_int8), "threads": 1}, trace="messages")
    try:
        _open(served, URI, ADD)
        _send(served, 9001, URI, 1, 10)
        _send(served, 9002, URI, 1, 10)
        _wait_for(served, lambda status: status["noSuggestion"]["counts"].get("model-loading"))
        gate.set()
        _wait_for(served, lambda status: status["state"] == "ready")
        assert _items(served, URI, 1, 10) == [" a + b"]
        traces = [n["params"] for n in served.notifications if n["method"] == "$/logTrace"]
        assert traces[0] == {"message": f"no suggestion at {URI}:1:10: model-loading"}  # trace from initialize, not verbose
    finally:
        gate.set()
        served.close()
        host.close()


def test_model_unavailable_and_model_cannot_complete(tmp_path, tiny_models):
    summarizer_only = tmp_path / "codet5-base-multi-sum"  # the name makes it that preset: it only summarizes
    summarizer_only.symlink_to(tiny_models.t5_int8, target_is_directory=True)
    for model, reason in [(tmp_path / "missing", "model-unavailable"), (summarizer_only, "model-cannot-complete")]:
        host = ModelHost()
        served = _start(host, {"model": str(model), "threads": 1})
        try:
            _wait_for(served, lambda status: status["state"] in ("ready", "error"))
            _open(served, URI, ADD)
            response = served.request("textDocument/inlineCompletion", _params(URI, 1, 10))
            assert response.get("result", {"items": []})["items"] == [], response
            assert _last(served)["reason"] == reason
        finally:
            served.close()
            host.close()


# -- the command line --------------------------------------------------------------------------
def test_complete_prints_the_reason(tmp_path, tiny_models):
    source = tmp_path / "add.py"
    source.write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    env = {**os.environ, "CODET5_LSP_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server", "complete", f"{source}:2:5", "--model", str(tiny_models.llama_int8), "--threads", "1"],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1 and result.stdout == "", result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"codet5-lsp: no suggestion: {NoSuggestion.DUPLICATES_SUFFIX.description} (duplicates-suffix)")
