"""The OpenAI-compatible backend: against a small SSE server written here, and end to end
against a real llama.cpp server (llama-cpp-python) running the tiny Llama as a GGUF file."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from bench.remote import measure
from inference import CapabilityError, CodeModel, load_model
from inference.engines.openai_backend import (
    API_KEY_ENV,
    BASE_URL_ENV,
    OpenAICompletionEngine,
    RemoteModelError,
    RemoteSpec,
    RemoteSpecError,
    parse_remote_spec,
)
from inference.engines.remote_model import RemoteCodeModel, estimate_tokens
from lsp_server.config import parse_settings
from tests.lsp_harness import end_of, inline, open_document, stdio_client

URI = "file:///work/example.py"
PREFIX = "def add(a, b):\n    return"


# -- specs and settings ------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "expected"), [
    ("openai:http://127.0.0.1:8080/v1#smollm2", RemoteSpec("http://127.0.0.1:8080/v1", "smollm2")),
    ("openai:http://localhost:8000", RemoteSpec("http://localhost:8000/v1")),
    (" OpenAI:https://GPU-box.example:443/api/v1/ ", RemoteSpec("https://gpu-box.example:443/api/v1")),
    ("openai:http://[::1]:9000/v1#org/model-7b", RemoteSpec("http://[::1]:9000/v1", "org/model-7b")),
])
def test_specs_name_a_base_url_and_an_optional_model(spec, expected):
    assert parse_remote_spec(spec) == expected
    assert expected.completions_url == expected.base_url + "/completions"


@pytest.mark.parametrize(("spec", "problem"), [
    ("openai:ftp://host/v1", "http:// or https://"),
    ("openai:127.0.0.1:8080", "http:// or https://"),
    ("openai:http:///v1", "no host"),
    ("openai:http://host:70000/v1", "port"),
    ("openai:http://user:secret@host/v1", API_KEY_ENV),
    ("openai:http://host/v1?key=1", "query"),
    ("openai:http://host/v1#my model", "spaces"),
])
def test_malformed_specs_are_refused_with_the_reason(spec, problem):
    with pytest.raises(RemoteSpecError, match=problem):
        parse_remote_spec(spec)


def test_a_bad_server_url_in_settings_is_reported_and_the_model_kept():
    settings, errors = parse_settings({"model": "openai:localhost:8080"})
    assert settings.model == "default"
    assert len(errors) == 1 and "codet5.model" in errors[0] and "http://" in errors[0]
    settings, errors = parse_settings({"model": "openai:http://10.0.0.5:8000/v1#coder"})
    assert errors == [] and settings.model == "openai:http://10.0.0.5:8000/v1#coder"


# -- a fake OpenAI-compatible server -----------------------------------------------------------
@dataclass
class Script:
    """What the fake server does; the requests it saw."""

    models: list[str] = field(default_factory=lambda: ["fake-coder", "other"])
    pieces: list[str] = field(default_factory=list)
    endless: str = ""  # after `pieces`, send this forever (until the client goes away)
    status: int = 200
    completion_status: int = 200  # the status of POST /completions alone
    error_event: bool = False  # an error event after `pieces`
    garbage: bool = False  # a data line that is not JSON after `pieces`
    hang_s: float = 0.0  # after the headers, send nothing for this long
    crlf: bool = False  # end SSE lines with \r\n and send comment lines in between
    continuation: list[str] | None = None  # pieces of the streamed requests after the first (default: `pieces`)
    alternatives: dict[str, float] | None = None  # top_logprobs of a one-token request (None: no logprobs)
    alternatives_status: int = 200  # the status a one-token (non-streamed) request gets
    requests: list[dict] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            script.requests.append({"path": self.path, "headers": dict(self.headers)})
            if script.status != 200:
                return self._json(script.status, {"error": {"message": "invalid api key"}})
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in script.models]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if script.status != 200 or script.completion_status != 200:
                status = script.status if script.status != 200 else script.completion_status
                return self._json(status, {"error": {"message": "invalid api key" if status == 401 else "server error"}})
            if not body["stream"]:
                return self._one_token(body)
            streamed = sum(1 for r in script.requests if r.get("body", {}).get("stream"))
            pieces = script.pieces if streamed == 1 or script.continuation is None else script.continuation
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            time.sleep(script.hang_s)
            end = "\r\n" if script.crlf else "\n"
            try:
                for piece in pieces:
                    if script.crlf:
                        self._chunk(f": ping{end}")
                    self._event(json.dumps({"object": "text_completion", "choices": [{"index": 0, "text": piece}]}), end)
                if script.error_event:
                    self._event(json.dumps({"error": {"message": "model crashed"}}), end)
                if script.garbage:
                    self._event("<html>", end)
                while script.endless:
                    self._event(json.dumps({"choices": [{"index": 0, "text": script.endless}]}), end)
                    time.sleep(0.01)
                self._event("[DONE]", end)
                self._chunk("")
            except (BrokenPipeError, ConnectionResetError):
                script.disconnected.set()

        def _one_token(self, body: dict) -> None:
            if script.alternatives_status != 200:
                return self._json(script.alternatives_status, {"error": {"message": "logprobs are not supported"}})
            top = script.alternatives or {}
            choice: dict = {"index": 0, "text": max(top, key=top.get) if top else "x", "finish_reason": "length"}
            if script.alternatives is not None:
                choice["logprobs"] = {"tokens": [choice["text"]], "top_logprobs": [top]}
            self._json(200, {"object": "text_completion", "choices": [choice]})

        def _event(self, data: str, end: str) -> None:
            self._chunk(f"data: {data}{end}{end}")

        def _chunk(self, text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


@contextlib.contextmanager
def fake_server(script: Script) -> Iterator[str]:
    """The fake server on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the backend against the fake server -------------------------------------------------------
def test_code_model_with_a_server_spec_is_a_remote_model(monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    script = Script()
    with fake_server(script) as url:
        messages: list[str] = []
        model = load_model(f"openai:{url}", progress=messages.append)
        assert isinstance(model, RemoteCodeModel)
        assert model.model_id == "fake-coder" and model.preset.name == "openai:fake-coder"
        assert model.can_complete and not model.can_summarize
        assert messages == [f"Connecting to {url}"]
        assert "Authorization" not in script.requests[0]["headers"]
        with pytest.raises(CapabilityError):
            model.summarize("def f(): pass")
        assert load_model(f"openai:{url}#other").model_id == "other"


def test_a_model_the_server_does_not_serve_is_an_error_listing_what_it_serves():
    with fake_server(Script()) as url:
        with pytest.raises(RemoteModelError, match=r"does not serve 'missing'.*fake-coder"):
            load_model(f"openai:{url}#missing")


def test_connection_refused_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(RemoteModelError, match=rf"GET {url}/models failed: connection refused"):
        load_model(f"openai:{url}")


def test_http_errors_name_the_url_and_status_and_the_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "sk-test")
    script = Script(status=401)
    with fake_server(script) as url:
        monkeypatch.setenv(BASE_URL_ENV, f"{url}/")
        with pytest.raises(RemoteModelError, match=rf"GET {url}/models answered HTTP 401 .*invalid api key"):
            load_model(f"openai:{url}")
    assert script.requests[0]["headers"]["Authorization"] == "Bearer sk-test"


def test_the_api_key_goes_only_to_a_base_url_the_user_allowed(monkeypatch):
    """Issue 17 item 2: a server URL alone (as editor settings give it) gets no key; one listed in
    $CODET5_LSP_OPENAI_BASE_URL (any spelling of the same base URL) gets it."""
    monkeypatch.setenv(API_KEY_ENV, "sk-test")
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    script = Script()
    with fake_server(script) as url:
        for allowed in ("", "http://127.0.0.1:1/v1", f"{url}/other", "not a url"):
            monkeypatch.setenv(BASE_URL_ENV, allowed)
            load_model(f"openai:{url}")
            assert "Authorization" not in script.requests[-1]["headers"], allowed
        for allowed in (url, f"openai:{url}/#fake-coder", f"http://elsewhere.example/v1, {url.replace('/v1', '')}"):
            monkeypatch.setenv(BASE_URL_ENV, allowed)
            load_model(f"openai:{url}#fake-coder")
            assert script.requests[-1]["headers"]["Authorization"] == "Bearer sk-test", allowed


def test_a_withheld_key_refused_by_the_server_says_how_to_allow_it(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "sk-test")
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    with fake_server(Script(status=401)) as url:
        with pytest.raises(RemoteModelError, match=rf"HTTP 401 .*sent only to a server the user allowed.*{BASE_URL_ENV}"):
            load_model(f"openai:{url}")


def test_the_request_is_greedy_streamed_and_the_prompt_healed():
    script = Script(pieces=["\n ", "   ret", "urn a", " + b", "\n"])
    with fake_server(script) as url:
        model = load_model(f"openai:{url}")
        stream = model.complete("def add(a, b):\n    ret", max_new_tokens=10)
        assert script.requests[-1]["path"] == "/v1/models"  # nothing sent before iterating
        assert stream.read() == "urn a + b\n"
        assert stream.finish_reason == "end" and stream.tokens == 5
    body = script.requests[-1]["body"]
    assert script.requests[-1]["path"] == "/v1/completions"
    assert body["prompt"] == "def add(a, b):" and body["model"] == "fake-coder"
    assert body["temperature"] == 0 and body["stream"] is True and "stop" not in body
    assert body["max_tokens"] == 10 + estimate_tokens("\n    ret") + 1


def test_when_the_servers_first_token_does_not_fit_the_most_likely_one_that_does_is_continued():
    script = Script(pieces=["\n\tpass"], alternatives={"\n    ": -0.9, "\n\t": -0.2, "\n": -1.5, " =": -3.0},
                    continuation=["return", " x", "\n"])
    with fake_server(script) as url:
        stream = load_model(f"openai:{url}").complete("def f(x):\n    ret", max_new_tokens=8)
        assert stream.read() == "urn x\n" and stream.finish_reason == "end"
    bet, ask, rest = [r["body"] for r in script.requests if r["path"].endswith("/completions")]
    assert bet["prompt"] == ask["prompt"] == "def f(x):" and bet["stream"] and "logprobs" not in bet
    assert ask["max_tokens"] == 1 and ask["logprobs"] == 5 and ask["stream"] is False
    assert rest["prompt"] == "def f(x):\n    " and rest["max_tokens"] == bet["max_tokens"] - 1


@pytest.mark.parametrize("script", [
    Script(pieces=["\n\tpass"], alternatives={"\n\t": -0.1, " pass": -2.0}),  # none fits
    Script(pieces=["\n\tpass"]),  # no logprobs in the answer
    Script(pieces=["\n\tpass"], alternatives_status=400),  # the server refuses logprobs
])
def test_a_continuation_that_cannot_recreate_the_cut_text_diverges(script):
    with fake_server(script) as url:
        stream = load_model(f"openai:{url}").complete("def f():\n    ")
        assert stream.read() == "" and stream.finish_reason == "diverged"
    assert [r["body"]["stream"] for r in script.requests if "body" in r] == [True, False]


def test_the_stop_rule_closes_the_connection_and_the_server_sees_it():
    script = Script(pieces=["\n    return", " a", " + b", "\n"], endless="x")
    with fake_server(script) as url:
        stream = load_model(f"openai:{url}").complete(PREFIX, stop=lambda text: "\n" in text)
        assert stream.read() == " a + b\n" and stream.finish_reason == "stop"
        assert script.disconnected.wait(10)


def test_closing_the_stream_cancels_the_request():
    script = Script(pieces=["\n"], endless="y")
    with fake_server(script) as url:
        stream = load_model(f"openai:{url}").complete("x = 1\n", max_new_tokens=500)
        assert next(stream) == "y"
        stream.close()
        assert stream.finish_reason == "closed"
        assert script.disconnected.wait(10)


def test_events_with_crlf_line_ends_and_comments_are_read():
    with fake_server(Script(pieces=["a", "b\n"], crlf=True)) as url:
        engine = OpenAICompletionEngine(parse_remote_spec(f"openai:{url}"))
        assert list(engine.stream("fake-coder", "x", 4, stop=["\n\n"])) == ["a", "b\n"]
    with fake_server(script := Script(pieces=["a"])) as url:
        list(OpenAICompletionEngine(parse_remote_spec(f"openai:{url}")).stream("m", "x", 4, stop=["\n\n", "def"]))
    assert script.requests[-1]["body"]["stop"] == ["\n\n", "def"]


def test_a_server_that_stops_answering_times_out_with_the_url():
    script = Script(pieces=["a"], hang_s=3)
    with fake_server(script) as url:
        engine = OpenAICompletionEngine(parse_remote_spec(f"openai:{url}"), timeout=0.3)
        with pytest.raises(RemoteModelError, match=rf"POST {url}/completions failed during generation: no answer within 0.3 s"):
            list(engine.stream("fake-coder", "x", 4))


@pytest.mark.parametrize(("script", "problem"), [
    (Script(pieces=["a"], error_event=True), "failed during generation: .*model crashed"),
    (Script(pieces=["a"], garbage=True), "not an OpenAI completion chunk"),
    (Script(status=500), "answered HTTP 500"),
])
def test_failures_during_a_completion_are_remote_model_errors(script, problem):
    with fake_server(script) as url:
        engine = OpenAICompletionEngine(parse_remote_spec(f"openai:{url}"))
        with pytest.raises(RemoteModelError, match=problem):
            list(engine.stream("fake-coder", "x", 4))


def test_measure_records_samples_for_every_prompt_and_repetition():
    script = Script(pieces=["\n", "x", "y", "z"])
    with fake_server(script) as url:
        result = measure(url, ["a = 1\n", "b = 2\n"], max_new_tokens=8, repeats=3)
    assert result["model"] == "fake-coder" and result["endpoint"] == url
    assert [p["prompt_chars"] for p in result["prompts"]] == [6, 6]
    for prompt in result["prompts"]:
        assert len(prompt["samples"]) == 3
        for sample in prompt["samples"]:
            assert sample["tokens"] == 4 and sample["finish_reason"] == "end"
            assert 0 < sample["first_token_ms"] <= sample["total_ms"]
        assert prompt["median_tokens"] == 4
    prompts = [r["body"]["prompt"] for r in script.requests if r["path"].endswith("/completions")]
    assert prompts == ["a = 1"] + ["a = 1", "b = 2"] * 3  # a warm-up, then the prompts in turn


async def test_an_unreachable_server_is_a_load_error_shown_to_the_user(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    async with stdio_client(tmp_path, {"model": f"openai:{url}"}) as (client, _):
        await client.wait_for(lambda c: c.state() == "error")
        await client.wait_for(lambda c: any(m.type == types.MessageType.Error and url in m.message for m in c.messages), 10)


async def test_a_server_failing_mid_session_is_an_error_response_naming_the_url(tmp_path):
    with fake_server(Script(completion_status=503)) as url:
        async with stdio_client(tmp_path, {"model": f"openai:{url}"}) as (client, _):
            await client.wait_for(lambda c: c.state() == "ready")
            open_document(client, URI, PREFIX)
            with pytest.raises(JsonRpcException, match=f"{url}/completions answered HTTP 503") as raised:
                await inline(client, URI, end_of(PREFIX))
            assert raised.value.code == types.LSPErrorCodes.RequestFailed


async def test_a_server_chosen_by_settings_gets_no_key_and_one_from_the_command_line_does(tmp_path, monkeypatch):
    """Issue 17 item 2, through the language server: a workspace setting naming a server is used
    without the user's key; `--model` on the command line sends it."""
    monkeypatch.setenv(API_KEY_ENV, "sk-secret")
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    script = Script()
    with fake_server(script) as url:
        for options, args, sent in (({"model": f"openai:{url}"}, (), False), (None, ("--model", f"openai:{url}"), True)):
            script.requests.clear()
            async with stdio_client(tmp_path, options, *args) as (client, _):
                await client.wait_for(lambda c: c.state() == "ready")
            assert script.requests and all(("Authorization" in r["headers"]) is sent for r in script.requests), (args, script.requests)


async def test_a_malformed_server_url_is_a_settings_warning_and_the_model_is_kept(tmp_path, tiny_models):
    async with stdio_client(tmp_path, {"model": str(tiny_models.llama_int8), "threads": 1}) as (client, _):
        await client.wait_for(lambda c: c.state() == "ready")
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"codet5": {"model": "openai:localhost:8080"}}))
        await client.wait_for(lambda c: any(m.type == types.MessageType.Warning for m in c.messages), 30)
        assert "codet5.model" in client.messages[0].message and "http://" in client.messages[0].message
        open_document(client, URI, PREFIX)
        result = await inline(client, URI, end_of(PREFIX))
        assert [item.insert_text for item in result.items] == [" a + b"]


# -- end to end against llama.cpp's server -----------------------------------------------------
def _wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(f"llama.cpp server exited with {process.returncode}: " + " | ".join(tail))
        try:
            OpenAICompletionEngine(parse_remote_spec(f"openai:{url}"), timeout=2).list_models()
            return
        except RemoteModelError:
            time.sleep(0.2)
    raise RuntimeError(f"llama.cpp server did not answer {url}/models within {timeout} s")


@dataclass(frozen=True)
class LlamaServer:
    url: str  # base URL, .../v1
    log: Path  # the server's output


@pytest.fixture(scope="module")
def llama_server(request, tmp_path_factory) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server on the tiny Llama (float32 GGUF).

    Whether it is installed is checked in a subprocess: llama.cpp's runtime stays out of the
    test process, which runs CTranslate2.
    """
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'llama-cpp-python[server]')")
    check = subprocess.run([sys.executable, "-c", "import llama_cpp.server.app"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"llama-cpp-python's server cannot start (its [server] extra?): {check.stderr.strip().splitlines()[-1:]}")
    from tests.tiny_gguf import write_llama_gguf

    tiny_models = request.getfixturevalue("tiny_models")
    gguf = write_llama_gguf(tiny_models.llama_hf, tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")
    port = free_port()
    log_path = gguf.parent / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "tiny-llama",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512", "--n_threads", "1"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_serving(url, process, log_path, 120)
        yield LlamaServer(url, log_path)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _line_done(text: str) -> bool:
    return "\n" in text


def test_llama_cpp_server_completes_as_the_local_engine_does(llama_server, tiny_models):
    from tests.tiny_models import CORPUS

    remote = load_model(f"openai:{llama_server.url}")
    assert remote.model_id == "tiny-llama"
    local = CodeModel(tiny_models.llama_float32, device="cpu", compute_type="float32", cpu_threads=1)
    for end in ("    return", "def greet(name):\n    ret", "class Counter:\n    def __init__(self):\n"):
        prefix = CORPUS[:CORPUS.index(end) + len(end)]  # the tiny model knows CORPUS from its start
        remote_text = remote.complete(prefix, max_new_tokens=16, stop=_line_done).read()
        local_text = local.complete(prefix, max_new_tokens=16, stop=_line_done).read()
        assert remote_text == local_text


def test_llama_cpp_server_heals_through_its_alternatives_as_the_local_engine_does(llama_server, tiny_models):
    remote = load_model(f"openai:{llama_server.url}")
    greedy = next(remote.engine.stream(remote.model_id, "def add(a, b):", 1))
    alternatives = remote.engine.first_token_alternatives(remote.model_id, "def add(a, b):", 5)
    assert len(alternatives) == 5 and alternatives[0] == greedy
    assert not greedy.startswith(" ") and " return" in alternatives  # the cut " ret" needs the fallback
    local = CodeModel(tiny_models.llama_float32, device="cpu", compute_type="float32", cpu_threads=1)
    prefix = "def add(a, b): ret"
    remote_text = remote.complete(prefix, max_new_tokens=12, stop=_line_done).read()
    assert remote_text.startswith("urn") and remote_text == local.complete(prefix, max_new_tokens=12, stop=_line_done).read()
    assert remote.complete(PREFIX, max_new_tokens=16, stop=_line_done).read().startswith(" a + b\n")


def test_llama_cpp_server_sees_a_closed_stream_as_a_disconnect_and_keeps_serving(llama_server):
    model = load_model(f"openai:{llama_server.url}")
    stream = model.complete("def add(a, b):\n", max_new_tokens=200)
    assert next(stream)
    stream.close()
    assert stream.finish_reason == "closed"
    deadline = time.monotonic() + 10
    while "Disconnected from client" not in llama_server.log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Disconnected from client" in llama_server.log.read_text(errors="replace")
    assert model.complete(PREFIX, max_new_tokens=8, stop=_line_done).read().startswith(" a + b\n")


async def test_inline_completion_through_the_language_server_from_llama_cpp(llama_server, tmp_path):
    async with stdio_client(tmp_path, {"model": f"openai:{llama_server.url}#tiny-llama"}) as (client, _):
        open_document(client, URI, PREFIX)
        result = await inline(client, URI, end_of(PREFIX))
        assert [item.insert_text for item in result.items] == [" a + b"]
        await client.wait_for(lambda c: c.state() == "ready")
        assert client.statuses[-1]["model"] == "openai:tiny-llama" and client.statuses[-1]["device"] == "remote"


def test_measure_against_llama_cpp_server(llama_server):
    from tests.tiny_models import CORPUS

    result = measure(llama_server.url, [PREFIX, CORPUS[:CORPUS.index("Counter")]], max_new_tokens=8, repeats=2)
    assert result["model"] == "tiny-llama"
    for prompt in result["prompts"]:
        assert [s["tokens"] for s in prompt["samples"]] == [prompt["samples"][0]["tokens"]] * 2
        assert all(s["first_token_ms"] is not None and s["tokens"] > 1 for s in prompt["samples"])
