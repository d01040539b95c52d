"""llama-server as the peer's engine (`bench.peer_replay`): the llama.vim setup, prompt cache on.

One `llama-server` process on the GGUF (one slot, `--cache-reuse 256` as llama.vim's README
starts it), asked over HTTP with `stream` and `cache_prompt` (the slot keeps the longest common
prefix with its previous prompt). Two endpoints:

- `/completion` with our prompt's token ids: the same ids our CTranslate2 engine gets;
- `/infill` (llama.vim's endpoint) with our prompt's text as `input_prefix` and no suffix: the
  server wraps it in the model's fill-in-the-middle tokens (its own prompt layout, so not the
  same ids).

Greedy (temperature 0); the first token's candidates come from `n_probs` when our healing asks
for them. Closing a stream closes its connection: the server stops that generation when it next
writes to it (llama.vim cancels a request the same way).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from inference.engines.healed_generation import FirstTokenRejected
from inference.engines.tokenizer import CodeTokenizer

ENDPOINTS = ("/completion", "/infill")


class LlamaServer:
    """A `llama-server` child process on a free local port."""

    def __init__(self, binary: Path, gguf: Path, threads: int, context: int, log: Path | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._log = open(log, "w", encoding="utf-8") if log else subprocess.DEVNULL  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [str(binary), "--model", str(gguf), "--host", "127.0.0.1", "--port", str(self.port), "--threads", str(threads),
             "--threads-batch", str(threads), "--ctx-size", str(context), "--parallel", "1", "--cache-reuse", "256",
             "--batch-size", "1024", "--ubatch-size", "512"],
            stdout=self._log, stderr=subprocess.STDOUT)
        self._wait(300)

    def _wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.process.returncode}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"llama-server not ready after {timeout_s} s")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()


class LlamaServerEngine:
    """A `DecoderBackend` (inference.engines.engine_protocols) served by a `LlamaServer` at `endpoint`;
    `jobs` records the server's timings per generation (`timings_per_token`: prompt ids as the
    server counts them, ids taken from its cache, prompt and decode ms; none when closed before its
    first token)."""

    def __init__(self, server: LlamaServer, tokenizer: CodeTokenizer, endpoint: str) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}")
        self.server = server
        self.tokenizer = tokenizer
        self.endpoint = endpoint
        self.jobs: list[dict[str, Any]] = []

    def _body(self, prompt_ids: list[int], max_new_tokens: int, k: int) -> dict[str, Any]:
        body: dict[str, Any] = {"n_predict": max_new_tokens, "stream": True, "cache_prompt": True, "return_tokens": True,
                                "timings_per_token": True, "temperature": 0.0, "top_k": 1, "n_probs": k}
        if self.endpoint == "/completion":
            body["prompt"] = list(prompt_ids)
        else:
            body.update(input_prefix=self.tokenizer.decode(list(prompt_ids)), input_suffix="", prompt="")
        return body

    def _generate(self, prompt_ids: list[int], max_new_tokens: int, end_tokens: list[str],
                  accept_first: Callable[[int], bool] | None = None, k: int = 0) -> Iterator[int]:
        end = {i for i in (self.tokenizer.token_id(t) for t in end_tokens) if i is not None}
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        connection.request("POST", self.endpoint, json.dumps(self._body(prompt_ids, max_new_tokens, k if accept_first else 0)),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"llama-server {self.endpoint}: {response.status} {response.read()[:300]!r}")
        produced, timings, reason = 0, {}, "stop"  # closed early unless the server says otherwise
        try:
            for raw in response:
                if not raw.startswith(b"data: "):
                    continue
                chunk = json.loads(raw[6:])
                timings = chunk.get("timings", timings)
                for token in chunk.get("tokens", []):
                    if token in end:
                        break
                    if produced == 0 and accept_first is not None and not accept_first(token):
                        top = chunk["completion_probabilities"][0]["top_logprobs"]
                        raise FirstTokenRejected([c["id"] for c in top])
                    produced += 1
                    yield token
                if chunk.get("stop"):
                    reason = chunk.get("stop_type", "end")
                    return
        finally:
            self.jobs.append({"done": reason, "prompt": timings.get("cache_n", 0) + timings.get("prompt_n", 0) or None,
                              "reused": timings.get("cache_n"), "prompt_ms": timings.get("prompt_ms"),
                              "decode_ms": timings.get("predicted_ms"), "tokens": produced})
            connection.close()

    def stream(self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str]) -> Iterator[int]:
        return self._generate(prompt_ids, max_new_tokens, end_tokens)

    def stream_checked(self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str],
                       accept_first: Callable[[int], bool], k: int) -> Iterator[int]:
        return self._generate(prompt_ids, max_new_tokens, end_tokens, accept_first, k)

    def tokenize(self, text: str) -> list[int]:
        """The server's own token ids of `text`."""
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        connection.request("POST", "/tokenize", json.dumps({"content": text, "add_special": False, "parse_special": True}),
                           {"Content-Type": "application/json"})
        return json.loads(connection.getresponse().read())["tokens"]

    def close(self) -> None:
        self.server.close()
