"""Protocol fuzzing over stdio: generated LSP traffic against the real server subprocess.

Hypothesis (derandomized, so every run sends the same messages) writes batches of requests
with well-formed or wrong-typed params, positions that are negative, huge or past the end,
documents with CRLF, surrogate pairs, combining characters, lone surrogates and binary
content, didChange for documents never opened, interleaved cancels, configuration changes,
unknown methods and bodies that are not JSON, not UTF-8 or not JSON-RPC. Framing stays valid
(a broken header loses the next message whatever the server does; the TCP garbage test in
test_faults.py covers that). After every batch a barrier request is sent and awaited.

Pass: the server never dies; every request gets exactly one response with its id (a result
or a JSON-RPC error with an integer code and a message), every body that is not a valid
message gets exactly one error response, and a normal completion still works at the end.

Budget: `CODET5_FUZZ_EXAMPLES` batches (default 1500) or `CODET5_FUZZ_SECONDS` of sending
(default 35), whichever ends first; `CODET5_FUZZ_LOG=FILE` keeps the servers' log.
`python -m pytest tests/reliability/test_fuzz_protocol.py -s` prints how many messages were tried.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lsp_server.config import Settings, settings_to_json
from lsp_server.docstring import GENERATE_DOCSTRING_COMMAND
from tests.lsp_harness import SERVER, RawConnection, server_env

EXAMPLES = int(os.environ.get("CODET5_FUZZ_EXAMPLES", "1500"))
SECONDS = float(os.environ.get("CODET5_FUZZ_SECONDS", "35"))
LOG = os.environ.get("CODET5_FUZZ_LOG")  # the servers' log file, to read after a failure
PROBE = "def add(a, b):\n    return"
PROBE_END = {"line": 1, "character": 10}
URIS = ["file:///fuzz/a.py", "file:///fuzz/b.js", "file:///fuzz/c.txt", "untitled:Untitled-1", "file:///fuzz/%F0%9F%98%80.py"]
ERROR_CODES_FOR_BAD_BODIES = {-32700, -32600, -32601, -32602}
TRIED: Counter[str] = Counter()  # what was sent, by kind, over the whole module
ANSWERS: Counter[str] = Counter()  # what came back: "result" or the error code
INTERNAL_ERRORS: list[str] = []


# -- one server subprocess and the messages exchanged with it ---------------------------------
class Exchange:
    """A server subprocess over stdio, with bookkeeping of what must be answered."""

    def __init__(self, loop: asyncio.AbstractEventLoop, raw: RawConnection) -> None:
        self.loop = loop
        self.raw = raw
        self._ids = iter(range(10_000, 10**9))
        self.recent: list[int] = []  # request ids, newest last (targets for cancels)

    @classmethod
    def start(cls, cache: Path) -> Exchange:
        loop = asyncio.new_event_loop()
        env = {**server_env(cache), "CODET5_LSP_WHEELS": str(cache / "no-wheels")}  # never fetch the default model

        async def spawn() -> RawConnection:
            process = await asyncio.create_subprocess_exec(
                *SERVER, *(["--log-file", LOG] if LOG else []), env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            return RawConnection(process)

        return cls(loop, loop.run_until_complete(spawn()))

    def new_id(self) -> int:
        return next(self._ids)

    def request(self, method: Any, params: Any, request_id: Any = None) -> Any:
        request_id = self.new_id() if request_id is None else request_id
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not _ABSENT:
            message["params"] = params
        self.raw.send(message)
        self.recent.append(request_id)
        return request_id

    def notify(self, method: str, params: Any) -> None:
        message = {"jsonrpc": "2.0", "method": method}
        if params is not _ABSENT:
            message["params"] = params
        self.raw.send(message)

    def settle(self, requests: list[Any], bad_bodies: list[Any], timeout: float = 60.0) -> dict[Any, dict]:
        """Wait for a response to every request and an error for every bad body (each the id it
        carried, or None); fail on anything answered twice or never asked."""
        return self.loop.run_until_complete(self._settle(requests, bad_bodies, timeout))

    async def _settle(self, requests: list[Any], bad_bodies: list[Any], timeout: float) -> dict[Any, dict]:
        waiting = list(requests)
        unanswered_bodies = list(bad_bodies)
        answers: dict[Any, dict] = {}
        deadline = time.monotonic() + timeout
        while waiting or unanswered_bodies:
            left = deadline - time.monotonic()
            assert left > 0, f"no response to requests {waiting} or bad bodies {unanswered_bodies}"
            message = await self.raw.receive(left)
            if "method" in message:
                if "id" in message:  # a request from the server: answer it like an editor would
                    self.raw.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                continue
            assert message.get("jsonrpc") == "2.0" and "id" in message, message
            assert ("result" in message) != ("error" in message), message
            if "error" in message:
                assert isinstance(message["error"].get("code"), int) and isinstance(message["error"].get("message"), str), message
            ANSWERS["result" if "result" in message else str(message["error"]["code"])] += 1
            if "error" in message and message["error"]["code"] == -32603:
                INTERNAL_ERRORS.append(message["error"]["message"])
            key = message.get("id")
            if key in waiting and not (isinstance(key, bool) or key is None):
                waiting.remove(key)
                answers[key] = message
            elif "error" in message and key in unanswered_bodies:
                assert message["error"]["code"] in ERROR_CODES_FOR_BAD_BODIES, message
                unanswered_bodies.remove(key)
            else:
                raise AssertionError(f"unexpected response {message}")
        return answers

    def alive(self) -> bool:
        return self.raw.process.returncode is None

    def close(self) -> None:
        self.loop.run_until_complete(self.raw.close())
        self.loop.close()


_ABSENT = object()


def initialize(exchange: Exchange, options: dict) -> None:
    request_id = exchange.request("initialize", {"capabilities": {}, "initializationOptions": options})
    assert "capabilities" in exchange.settle([request_id], [])[request_id]["result"]
    exchange.notify("initialized", {})


def probe_completion(exchange: Exchange, options: dict) -> dict:
    """Restore the default settings, open the probe document and complete at its end."""
    exchange.notify("workspace/didChangeConfiguration", {"settings": {"codet5": {**settings_to_json(Settings()), **options}}})
    exchange.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///fuzz/probe.py", "languageId": "python", "version": 1, "text": PROBE}})
    request_id = exchange.request("textDocument/inlineCompletion", {
        "textDocument": {"uri": "file:///fuzz/probe.py"}, "position": PROBE_END, "context": {"triggerKind": 1}})
    return exchange.settle([request_id], [])[request_id]


@pytest.fixture(scope="module")
def options(tiny_models) -> dict:
    return {"model": str(tiny_models.llama_int8), "threads": 1}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, options) -> Iterator[Exchange]:
    exchange = Exchange.start(tmp_path_factory.mktemp("fuzz-cache"))
    initialize(exchange, options)
    yield exchange
    exchange.close()


# -- what is sent ---------------------------------------------------------------------------
def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` seven times in eight, else `odd`."""
    return st.integers(0, 7).flatmap(lambda k: odd if k == 0 else usual)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
numbers = mostly(st.integers(0, 12), st.sampled_from([40, 2**31 - 1, 2**31, 2**53, -1, -(2**31)]))
odd_numbers = st.sampled_from([1.5, "1", None, True, [], {}])
positions = mostly(st.fixed_dictionaries({"line": numbers, "character": numbers}),
                   st.fixed_dictionaries({"line": numbers | odd_numbers, "character": numbers | odd_numbers}))
ranges = st.fixed_dictionaries({"start": positions, "end": positions})
TEXT_PIECES = [
    PROBE, "\n", "\r\n", "\r", "    ", "x", "é", "😀", "𝔘", "e\u0301", "👩\u200d💻", "\u200b", "\x00", "\x07", "\x0c",
    "\u2028", "\ud800", "\udfff", "\ufeff", "def f(", "'''", "(", "]", "{", "\t",
]
document_texts = st.lists(st.sampled_from(TEXT_PIECES), max_size=16).map("".join)
uris = mostly(st.sampled_from(URIS), st.sampled_from(["file:///never/opened.py", "", "not a uri", "file:///fuzz/../../etc/passwd"]))
text_documents = mostly(st.fixed_dictionaries({"uri": uris}), json_values)
settings_values = st.dictionaries(
    st.sampled_from(["completionMode", "maxNewTokens", "contextTokens", "enabled", "disabledLanguages", "nonsense", "codet5"]),
    json_values | st.sampled_from(["line", "block", "auto", 1, 16, 64, 256, True, False, ["python"]]),
    max_size=4,
)


def request_params(method: str) -> st.SearchStrategy:
    """Params for `method`: well-formed, with odd values, or anything at all."""
    position_params = st.fixed_dictionaries({"textDocument": text_documents, "position": positions})
    well_formed = {
        "textDocument/inlineCompletion": st.fixed_dictionaries({
            "textDocument": text_documents, "position": positions,
            "context": st.fixed_dictionaries({"triggerKind": st.sampled_from([1, 2, 0, 3, "x"])})}),
        "textDocument/completion": position_params,
        "textDocument/hover": position_params,
        "textDocument/codeAction": st.fixed_dictionaries({
            "textDocument": text_documents, "range": ranges,
            "context": st.fixed_dictionaries({"diagnostics": st.just([])}, optional={"only": st.lists(st.text(max_size=12), max_size=2)})}),
        "workspace/executeCommand": st.fixed_dictionaries({
            "command": st.sampled_from(["codet5.status", GENERATE_DOCSTRING_COMMAND, "nope", ""]),
            "arguments": st.lists(uris | positions | json_values, max_size=3)}),
    }.get(method)
    anything = json_values | st.just(_ABSENT)
    return anything if well_formed is None else mostly(well_formed, anything)


REQUEST_METHODS = [
    "textDocument/inlineCompletion", "textDocument/completion", "textDocument/hover", "textDocument/codeAction",
    "workspace/executeCommand", "textDocument/definition", "completionItem/resolve", "textDocument/didOpen",
    "codet5/unknown", "", "$/unknown", "window/showMessage",
]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, Any, Any]:
    method = draw(mostly(st.sampled_from(REQUEST_METHODS[:5]), st.sampled_from(REQUEST_METHODS[5:]) | st.text(max_size=30)))
    return ("request", method, draw(request_params(method)))


@st.composite
def notifications(draw: st.DrawFn) -> tuple[str, str, Any]:
    kind = draw(st.sampled_from(["open", "open", "change", "change", "change", "close", "cancel", "cancel", "config", "other"]))
    if kind == "open":
        params = {"textDocument": {"uri": draw(uris), "languageId": draw(st.sampled_from(["python", "javascript", "plaintext", "rust", ""])),
                                   "version": draw(numbers), "text": draw(document_texts)}}
        return ("notify", "textDocument/didOpen", draw(mostly(st.just(params), json_values)))
    if kind == "change":
        change = mostly(st.fixed_dictionaries({"range": ranges, "text": document_texts}), st.fixed_dictionaries({"text": document_texts}) | json_values)
        params = {"textDocument": {"uri": draw(uris), "version": draw(numbers)}, "contentChanges": draw(st.lists(change, max_size=3))}
        return ("notify", "textDocument/didChange", params)
    if kind == "close":
        return ("notify", "textDocument/didClose", {"textDocument": draw(text_documents)})
    if kind == "cancel":
        return ("cancel", draw(st.integers(0, 4)), draw(json_values))
    if kind == "config":
        return ("notify", "workspace/didChangeConfiguration", {"settings": draw(st.just({}) | st.fixed_dictionaries({"codet5": settings_values}) | json_values)})
    method = draw(st.sampled_from(["$/setTrace", "initialized", "window/workDoneProgress/cancel", "codet5/whatever", "$/progress", "textDocument/didSave"]))
    return ("notify", method, draw(json_values | st.just(_ABSENT)))


def bad_bodies() -> st.SearchStrategy[tuple[str, bytes, Any]]:
    """Bodies that are not valid messages, with the id their error response may carry."""
    def with_id(body: bytes) -> tuple[str, bytes, Any]:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return ("bad", body, None)
        carried = data.get("id") if isinstance(data, dict) else None
        return ("bad", body, carried if isinstance(carried, (int, str)) and not isinstance(carried, bool) else None)

    valid = json.dumps({"jsonrpc": "2.0", "id": -5, "method": "textDocument/hover", "params": {}}).encode()
    structured = st.one_of(
        st.binary(min_size=1, max_size=120),
        st.text(min_size=1, max_size=60).map(str.encode),
        st.integers(1, len(valid) - 1).map(lambda n: valid[:n]),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.sampled_from([
            b'{"jsonrpc": "2.0", "id": -1, "method": "x", "params": "\xff\xfe"}',
            b'{"id": -2, "method": "textDocument/hover", "params": {}}',
            b'{"jsonrpc": "1.0", "id": -3, "method": "codet5/status", "params": {}}',
            b'{"jsonrpc": "2.0", "id": -4, "method": 7, "params": {}}',
            b'{"jsonrpc": "2.0", "id": -6, "method": ["a"], "params": {}}',
            b'{"jsonrpc": "2.0", "id": -7, "method": "textDocument/hover", "params": {"textDocument": {"uri": "x", "jsonrpc": "2.0"}, '
            b'"position": {"line": 0, "character": 0}}}',
            b'{"jsonrpc": "2.0", "id": -8, "method": "x", "params": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            b'{"jsonrpc": "2.0", "id": [1], "method": "x"}',
            b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "codet5/x"}',
            b'{"jsonrpc": "2.0", "id": null, "method": "codet5/x"}',
            b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"jsonrpc": "2.0"}}}',
            json.dumps({"jsonrpc": "2.0", "id": -9, "method": "codet5/x", "params": {}}).encode("utf-16"),
        ]),
    )
    return structured.map(with_id)


messages = st.integers(0, 9).flatmap(lambda k: requests() if k < 4 else notifications() if k < 8 else bad_bodies())
batches = st.lists(messages, min_size=1, max_size=12)


def send_batch(exchange: Exchange, batch: list[tuple]) -> tuple[list[Any], list[Any]]:
    """Send a batch; returns the request ids and the bad bodies' ids that must be answered."""
    request_ids: list[Any] = []
    bad_ids: list[Any] = []
    for item in batch:
        kind = item[0]
        if kind == "request":
            request_ids.append(exchange.request(item[1], item[2]))
        elif kind == "notify":
            exchange.notify(item[1], item[2])
        elif kind == "cancel":
            target = exchange.recent[-1 - item[1]] if len(exchange.recent) > item[1] else item[2]
            exchange.notify("$/cancelRequest", {"id": target})
        else:
            body, carried = item[1], item[2]
            try:
                data = json.loads(body)
                is_message = isinstance(data, dict) and data.get("jsonrpc") == "2.0" and isinstance(data.get("method"), str)
            except (ValueError, RecursionError):
                is_message = False
            if is_message:  # a request or notification after all (e.g. UTF-16): answered like one
                if "id" in data:
                    (request_ids if carried is not None else bad_ids).append(carried)
            else:
                bad_ids.append(carried)
            exchange.raw.send_bytes(body)
        TRIED[kind] += 1
    return request_ids, bad_ids


# -- the tests --------------------------------------------------------------------------------
_started: list[float] = []


# No shrinking: the server keeps state from one batch to the next, so a failing batch is reported as it was sent.
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, phases=[Phase.generate], report_multiple_bugs=False,
          suppress_health_check=list(HealthCheck))
@given(batches)
def test_fuzzed_messages_are_all_answered_and_the_server_survives(fuzzed, batch):
    if not _started:
        _started.append(time.monotonic())
    if time.monotonic() - _started[0] > SECONDS:
        return  # the time budget is spent: the remaining examples send nothing
    request_ids, bad_ids = send_batch(fuzzed, batch)
    barrier = fuzzed.request("workspace/executeCommand", {"command": "codet5.status"})
    TRIED["barrier"] += 1
    answers = fuzzed.settle([*request_ids, barrier], bad_ids)
    assert "result" in answers[barrier]
    assert fuzzed.alive()


def test_edge_documents_get_answers(fuzzed):
    """Documents of 5 MB, CRLF, surrogate pairs, combining characters, lone surrogates and binary
    bytes: completion, hover and code actions at their start, middle, end and past their lines."""
    documents = {
        "file:///edge/big.py": "".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(170_000))[:5_000_000] + "\n" + PROBE,
        "file:///edge/crlf.py": PROBE.replace("\n", "\r\n") + "\r\n\r\nx = 1\r\n",
        "file:///edge/astral.py": "s = '😀𝔘👩\u200d💻'\n" * 50 + PROBE,
        "file:///edge/combining.py": "n = 'e\u0301\u0301\u0301'  # Zalgo: " + "a\u0300\u0301\u0302" * 30 + "\n" + PROBE,
        "file:///edge/lone.py": "bad = '\ud800\udfff\ud83d'\n" + PROBE,
        "file:///edge/binary.py": "".join(chr(c) for c in range(0, 32)) * 100 + "\n" + PROBE,
    }
    request_ids = []
    for uri, text in documents.items():
        fuzzed.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})
        last_line = text.count("\n") + text.count("\r") - text.count("\r\n")
        places = [(0, 0), (0, 3), (0, 10**6), (last_line // 2, 1), (last_line, 10), (last_line, 10**6), (last_line + 1, 0)]
        for line, character in places[::3] if len(text) > 1_000_000 else places:
            position = {"line": line, "character": character}
            for method, params in [
                ("textDocument/inlineCompletion", {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 1}}),
                ("textDocument/completion", {"textDocument": {"uri": uri}, "position": position}),
                ("textDocument/hover", {"textDocument": {"uri": uri}, "position": position}),
                ("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": {"start": position, "end": position},
                                             "context": {"diagnostics": []}}),
            ]:
                request_ids.append(fuzzed.request(method, params))
                TRIED["request"] += 1
        TRIED["notify"] += 1
    answers = fuzzed.settle(request_ids, [], timeout=120)
    assert len(answers) == len(request_ids)
    assert fuzzed.alive()


def test_a_normal_completion_works_after_the_fuzzing(fuzzed, options):
    answer = probe_completion(fuzzed, options)
    assert [item["insertText"] for item in answer["result"]["items"]] == [" a + b"]
    assert fuzzed.alive()
    total = sum(TRIED.values())
    print(f"\nfuzz: {total} messages tried ({dict(TRIED)}); answers: {dict(ANSWERS)}; server alive, "
          f"probe completion {answer['result']['items'][0]['insertText']!r}; internal errors: {Counter(INTERNAL_ERRORS).most_common(8)}")


def test_requests_before_initialize_are_refused_and_initialize_still_works(tmp_path, options):
    """LSP: before `initialize`, requests get ServerNotInitialized (-32002) and notifications are dropped."""
    exchange = Exchange.start(tmp_path)
    try:
        exchange.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///early.py", "languageId": "python", "version": 1, "text": PROBE}})
        exchange.notify("workspace/didChangeConfiguration", {"settings": {"codet5": options}})
        early = [exchange.request(method, params) for method, params in [
            ("textDocument/inlineCompletion", {"textDocument": {"uri": "file:///early.py"}, "position": PROBE_END, "context": {"triggerKind": 1}}),
            ("textDocument/hover", {"textDocument": {"uri": "file:///early.py"}, "position": PROBE_END}),
            ("workspace/executeCommand", {"command": "codet5.status"}),
            ("shutdown", None),
            ("codet5/unknown", {}),
        ]]
        answers = exchange.settle(early, [])
        assert {answers[i]["error"]["code"] for i in early} == {-32002}
        initialize(exchange, options)
        answer = probe_completion(exchange, options)
        assert [item["insertText"] for item in answer["result"]["items"]] == [" a + b"]
    finally:
        exchange.close()


def test_requests_in_flight_are_answered_before_shutdown(tmp_path, options):
    """An editor that quits sends `shutdown` with requests still running: each gets its answer
    (the last one RequestCancelled from inside a 2 s debounce, the others that or empty, superseded
    by the next) before the answer to shutdown, so that nobody is left waiting (an outside run left
    29 requests of 8 editors unanswered)."""
    exchange = Exchange.start(tmp_path)
    try:
        initialize(exchange, options)
        probe_completion(exchange, {**options, "debounceMs": 2000})
        text = "def mul(a, b):\n    return"  # not the probe's text: nothing cached for it
        exchange.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///fuzz/quit.py", "languageId": "python", "version": 1, "text": text}})
        waiting = [exchange.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": "file:///fuzz/quit.py"}, "position": {"line": 1, "character": 10}, "context": {"triggerKind": 2}})
            for _ in range(3)]
        shutdown = exchange.request("shutdown", None)

        async def answers_in_order() -> list[dict]:
            arrived: list[dict] = []
            while not arrived or arrived[-1].get("id") != shutdown:
                message = await exchange.raw.receive(30)
                if "method" not in message:
                    arrived.append(message)
            return arrived

        arrived = exchange.loop.run_until_complete(answers_in_order())
        assert sorted(message["id"] for message in arrived[:-1]) == waiting  # each answered once, before shutdown
        for message in arrived[:-1]:  # RequestCancelled, or superseded by the next one (an empty answer)
            assert message.get("error", {}).get("code") == -32800 or not (message.get("result") or {}).get("items"), message
        assert arrived[-1] == {"jsonrpc": "2.0", "id": shutdown, "result": None}
    finally:
        exchange.close()


def test_requests_after_shutdown_are_invalid_and_exit_ends_the_process(tmp_path, options):
    """LSP: after `shutdown`, requests get InvalidRequest (-32600); `exit` then ends the process with 0."""
    exchange = Exchange.start(tmp_path)
    try:
        initialize(exchange, options)
        shutdown = exchange.request("shutdown", None)
        assert exchange.settle([shutdown], [])[shutdown]["result"] is None
        late = [exchange.request("workspace/executeCommand", {"command": "codet5.status"}),
                exchange.request("textDocument/hover", {"textDocument": {"uri": "file:///x.py"}, "position": {"line": 0, "character": 0}})]
        answers = exchange.settle(late, [])
        assert {answers[i]["error"]["code"] for i in late} == {-32600}
        exchange.notify("exit", None)
        assert exchange.loop.run_until_complete(asyncio.wait_for(exchange.raw.process.wait(), 30)) == 0
    finally:
        exchange.close()
