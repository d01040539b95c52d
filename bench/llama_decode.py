"""llama.cpp's decode step on the same model, text and threads, beside bench.decode_profile's.

llama-cpp-python (`bench/llama_worker.py`, through bench.peer_replay's engine) on the GGUF our
default was converted from. Per context n: one request evaluates n tokens and 4 more (its KV
cache then holds them), then each sample sends the same n tokens with 4 other new ones, so only
those 4 are evaluated, in one batch, before the first new token (CTranslate2 needs two passes
there); the step is the worker's decode time over the K steps after the first token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .stats import median, p95

PROMPT_TOKENS = 4


def measure(python: Path, gguf: Path, model_dir: Path, text: str, contexts: list[int], new_tokens: int, samples: int,
            threads: int) -> dict[str, Any]:
    """First-token and step milliseconds per context (median and p95 over `samples`)."""
    from inference.engines.tokenizer import CodeTokenizer

    from .peer_replay import LlamaCppEngine, PeerSetup

    tokenizer = CodeTokenizer(model_dir)
    ids = tokenizer.encode(text)
    window = max(contexts) + PROMPT_TOKENS * (samples + 2) + new_tokens
    engine = LlamaCppEngine(PeerSetup("llama-cpp-python", python, gguf, threads=threads, context=window), tokenizer)
    rows = {}
    try:
        for context in contexts:
            for sample in range(samples + 1):  # the first evaluates the whole context
                new = ids[context + PROMPT_TOKENS * sample: context + PROMPT_TOKENS * (sample + 1)]
                for _ in engine.stream(ids[:context] + new, 0, 1 + new_tokens, []):
                    pass
            jobs = engine.jobs[-samples:]
            first = [job["prompt_ms"] for job in jobs]
            steps = [job["decode_ms"] / new_tokens for job in jobs]
            rows[str(context)] = {"first_token_ms": {"median": round(median(first), 1), "p95": round(p95(first), 1)},
                                  "step_ms": {"median": round(median(steps), 1), "p95": round(p95(steps), 1)},
                                  "evaluated": [job["prompt"] - job["reused"] for job in jobs]}
    finally:
        engine.close()
    return {"gguf": str(gguf), "gguf_mb": round(gguf.stat().st_size / 1e6, 1), "threads": threads, "results": rows}
