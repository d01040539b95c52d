"""llama.cpp behind a pipe, for `bench.peer_replay`: run by a Python that has llama-cpp-python.

    python bench/llama_worker.py MODEL.gguf THREADS CONTEXT

It imports nothing of this project (its Python need not have it). One `Llama` object; JSON lines
on stdin and stdout, one request at a time:

- `{"op": "tokenize", "text": ...}` -> `{"ids": [...]}` (no BOS, special tokens as text);
- `{"op": "generate", "ids": [...], "max": N, "end": [...], "k": K}` -> one `{"token": id}` per
  generated id (the first with `"top"`, the K most likely ids of that step, when K > 0), each
  answered by `{"op": "next"}` or `{"op": "stop"}` before the next step is computed; then
  `{"done": "end" | "length" | "stop", "prompt": n, "reused": n, "prompt_ms": ms, "decode_ms": ms}`.

Greedy: the id with the largest logit. An id in `end` ends the generation and is not sent.
The KV cache keeps what the previous generation evaluated (prompt and generated ids); a new
prompt reuses its longest common prefix with those ids and evaluates only the rest: what
`Llama.generate` does with its default `reset=True` (at least one id is evaluated, for its logits).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from llama_cpp import Llama


def _send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _read() -> dict:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit(0)
    return json.loads(line)


def generate(llama: Llama, request: dict) -> None:
    ids, end, k = request["ids"], set(request["end"]), request.get("k", 0)
    cached = llama.input_ids[: llama.n_tokens].tolist()
    reused = min(Llama.longest_token_prefix(cached, ids), len(ids) - 1)
    started = time.perf_counter()
    llama.n_tokens = reused  # eval() drops the KV cache after n_tokens before it appends
    llama.eval(ids[reused:])
    prompt_ms = (time.perf_counter() - started) * 1000
    decode_start, reason, produced = time.perf_counter(), "length", 0
    while produced < request["max"]:
        logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(llama.n_vocab(),))
        token = int(logits.argmax())
        if token in end:
            reason = "end"
            break
        message: dict = {"token": token}
        if produced == 0 and k > 0:
            top = np.argpartition(-logits, k)[:k]
            message["top"] = [int(i) for i in top[np.argsort(-logits[top])]]
        _send(message)
        produced += 1
        if _read()["op"] == "stop":
            reason = "stop"
            break
        if produced < request["max"]:
            llama.eval([token])
    _send({"done": reason, "prompt": len(ids), "reused": reused, "prompt_ms": round(prompt_ms, 2),
           "decode_ms": round((time.perf_counter() - decode_start) * 1000, 2), "tokens": produced})


def main() -> None:
    gguf, threads, context = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    llama = Llama(model_path=gguf, n_ctx=context, n_threads=threads, n_threads_batch=threads, verbose=False)
    _send({"ready": True})
    while True:
        request = _read()
        if request["op"] == "tokenize":
            _send({"ids": llama.tokenize(request["text"].encode("utf-8"), add_bos=False, special=True)})
        else:
            generate(llama, request)


if __name__ == "__main__":
    main()
