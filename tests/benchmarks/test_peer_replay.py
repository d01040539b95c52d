"""bench.peer_replay without llama.cpp: the keys both sides type, the worker's pipe protocol (the real
`bench/llama_worker.py` over a stand-in `llama_cpp` whose "model" is a rule), stale requests, ratios."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.peer_replay import LlamaCppEngine, PeerSetup, _Host, _PeerWorker, markdown, ratios
from bench.replay import Keystroke, Request, classify, next_key, summarize
from inference.engines.healed_generation import FirstTokenRejected
from inference.engines.stream import JobStopped

# A stand-in llama_cpp: greedy picks (last evaluated id + 1) % 50, the runner-up is + 2.
FAKE_LLAMA_CPP = textwrap.dedent("""
    import ctypes
    import numpy as np

    VOCAB = 50

    class _Context:
        def __init__(self, llama):
            self.llama = llama

        def get_logits_ith(self, i):
            last = int(self.llama.input_ids[self.llama.n_tokens - 1])
            self.logits = np.zeros(VOCAB, dtype=np.float32)
            self.logits[(last + 1) % VOCAB], self.logits[(last + 2) % VOCAB] = 2.0, 1.0
            return self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    class Llama:
        def __init__(self, model_path, n_ctx, n_threads, n_threads_batch, verbose):
            self.input_ids = np.zeros(n_ctx, dtype=np.intc)
            self.n_tokens = 0
            self._ctx = _Context(self)

        def n_vocab(self):
            return VOCAB

        def tokenize(self, text, add_bos, special):
            return [b % VOCAB for b in text]

        def eval(self, tokens):
            self.input_ids[self.n_tokens: self.n_tokens + len(tokens)] = tokens
            self.n_tokens += len(tokens)

        @staticmethod
        def longest_token_prefix(a, b):
            n = 0
            for x, y in zip(a, b):
                if x != y:
                    break
                n += 1
            return n
""")


class _Vocabulary:
    """The engine asks the tokenizer only for the ids of end tokens."""

    def token_id(self, token: str) -> int | None:
        return {"<end>": 7}.get(token)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "llama_cpp.py").write_text(FAKE_LLAMA_CPP, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    setup = PeerSetup("llama-cpp-python", Path(sys.executable), tmp_path / "model.gguf")
    engine = LlamaCppEngine(setup, _Vocabulary())  # type: ignore[arg-type]
    yield engine
    engine.close()
    assert engine.process.returncode == 0


# -- the keys ---------------------------------------------------------------------------------------

def test_keystroke_end_is_the_cursor_after_the_insertion():
    assert Keystroke(3, 4, "x", 0.0).end == (3, 5)
    assert Keystroke(3, 4, "\n    ", 0.0).end == (4, 4)
    assert Keystroke(3, 4, "abc", 0.0).end == (3, 7)


def test_next_key_accepts_a_suggestion_only_when_the_next_keys_of_the_line_type_it():
    keys = [Keystroke(0, 0, "r", 10.0), Keystroke(0, 1, "e", 20.0), Keystroke(0, 2, "t", 30.0),
            Keystroke(0, 3, "\n", 40.0), Keystroke(1, 0, "x", 50.0)]
    shown = Request(0, 0, 0, "char", 0.0, latency_ms=5.0, text="re")
    assert next_key(keys, 0, [shown], accept=True) == (Keystroke(0, 0, "re", 20.0), 2, "accept")
    assert next_key(keys, 0, [shown], accept=False) == (keys[0], 1, "char")
    assert next_key(keys, 1, [shown], accept=True) == (keys[1], 2, "char")  # "et" does not start with "re"
    beyond = Request(0, 0, 0, "char", 0.0, latency_ms=5.0, text="ret\nx")  # the line ends first
    assert next_key(keys, 0, [beyond], accept=True) == (keys[0], 1, "char")
    unanswered = Request(0, 0, 0, "char", 0.0, text="re")
    assert next_key(keys, 0, [unanswered], accept=True) == (keys[0], 1, "char")
    assert next_key(keys, 3, [shown], accept=True) == (keys[3], 4, "enter")


# -- the worker's protocol --------------------------------------------------------------------------

def test_generation_is_greedy_stops_at_an_end_id_and_reuses_the_cached_prefix(engine):
    assert list(engine.stream([1, 2, 3], 0, 10, ["<end>", "<unknown>"])) == [4, 5, 6]  # 7 is the end id
    first = engine.jobs[-1]
    assert (first["done"], first["prompt"], first["reused"], first["tokens"]) == ("end", 3, 0, 3)
    # The cache now holds 1 2 3 4 5 6 (each id sent was evaluated when asked for the next): 1 2 9 shares two.
    assert list(engine.stream([1, 2, 9], 0, 2, [])) == [10, 11]
    assert (engine.jobs[-1]["done"], engine.jobs[-1]["reused"]) == ("length", 2)
    # A prompt the cache holds entirely still evaluates its last id (for the logits).
    assert list(engine.stream([1, 2, 9], 0, 1, [])) == [10]
    assert engine.jobs[-1]["reused"] == 2


def test_closing_a_stream_stops_the_worker_before_another_id(engine):
    stream = engine.stream([20], 0, 10, [])
    assert next(stream) == 21
    stream.close()
    assert (engine.jobs[-1]["done"], engine.jobs[-1]["tokens"]) == ("stop", 1)
    assert list(engine.stream([30], 0, 2, [])) == [31, 32]  # the pipe is in step for the next request


def test_a_refused_first_id_carries_the_most_likely_ids(engine):
    with pytest.raises(FirstTokenRejected) as refused:
        list(engine.stream_checked([40], 0, 5, [], lambda token: token != 41, 2))
    assert refused.value.candidates == [41, 42]
    assert engine.jobs[-1]["done"] == "stop"
    assert list(engine.stream_checked([40], 0, 2, [], lambda token: True, 2)) == [41, 42]


def test_the_worker_tokenizes_with_its_own_vocabulary(engine):
    assert engine.tokenize("ab") == [97 % 50, 98 % 50]


# -- stale requests ---------------------------------------------------------------------------------

def test_a_request_stale_before_its_turn_never_runs_its_job():
    ran: list[str] = []

    def job(model: object, stop: object) -> str:
        ran.append("job")
        return "done"

    async def scenario() -> tuple[str, bool]:
        host = _Host(model=object())
        assert await _PeerWorker(host, lambda: False).run(job) == "done"
        try:
            await _PeerWorker(host, lambda: True).run(job)
        except JobStopped:
            return "stopped", len(ran) == 1
        return "ran", False

    assert asyncio.run(scenario()) == ("stopped", True)


# -- ratios -----------------------------------------------------------------------------------------

def test_ratios_are_ours_over_the_peer_and_missing_figures_give_none():
    def result(cold: float, p50: float | None) -> dict:
        pauses = {"time_to_suggestion": {"count": 1, "p50_ms": p50, "p95_ms": 2 * p50} if p50 else {"count": 0}}
        return {"cold_request_ms": cold, "summary": {"pauses": pauses, "model_runs": {"count": 1, "p50_ms": 100.0, "p95_ms": 400.0}}}

    r = ratios(result(300.0, 200.0), result(600.0, 400.0))
    assert r == {"cold_request": 0.5, "pause_to_suggestion_p50": 0.5, "pause_to_suggestion_p95": 0.5,
                 "model_runs_p50": 1.0, "model_runs_p95": 1.0}
    assert ratios(result(300.0, None), result(600.0, 400.0))["pause_to_suggestion_p50"] is None


def test_the_results_table_has_a_row_per_side_and_a_ratio_line_per_peer():
    def requests(latency: float) -> list[dict]:
        rows = [Request(i, 0, i, "char", i * 1.0, pause_after_ms=500.0, latency_ms=latency, text="x") for i in range(3)]
        classify(rows)
        return [asdict(r) for r in rows]

    machine = {"cpu": "cpu", "cores": 2, "commit": "abc", "date": "today"}
    scenario = {"lines": 2, "path": "/x/textwrap.py", "start_line": 3, "pause_chance": 0.1, "accept": True}
    ours = {"scenario": scenario, "machine": machine, "load": {"mean": 1.0}, "cold_request_ms": 900.0,
            "summary": summarize(requests(200.0)), "server_prompt_cache": {"hits": 5, "fills": 1}}
    peer = {"machine": machine, "load": {"mean": 1.5}, "cold_request_ms": 300.0, "summary": summarize(requests(400.0)),
            "options": {"debounce_ms": 0}, "jobs": {"reused_ids": 90, "prompt_ids": 100}}
    data = {"command": "python -m bench replay", "order": ["ours", "llama-cpp-python"],
            "runs": {"ours": ours, "llama-cpp-python": peer},
            "ours_over_peer": {"llama-cpp-python": ratios(ours, peer)}}
    text = "\n".join(markdown("small", data))
    assert "| ours: CTranslate2 int8" in text and "| llama-cpp-python Q4_K_M behind our pipeline, debounce 0 ms" in text
    assert "90 of 100 prompt ids reused" in text and "static prompt hit / fill 5 / 1" in text
    assert "- ours / llama-cpp-python: cold request 3.0, pause to suggestion p50 0.5, p95 0.5 (n=3 vs 3)" in text
