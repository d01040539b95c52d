"""Latency of completions through the OpenAI-compatible backend (CodeModel -> HTTP -> a server).

For the peer table's "CodeModel via OpenAI API -> llama.cpp server" row: the same path an
editor's request takes after the context builder (healed prompt, streamed events, healing
filter), timed from the call to the first text the stream yields and to its end. No stop rule:
each request runs to `max_new_tokens` or the server's end of text.

Repetitions go round the prompts (prompt 1, 2, ..., 1, 2, ...), so consecutive requests differ;
a server's prompt cache still reuses whatever the prompts share at their start.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from inference.engines.openai_backend import SPEC_PREFIX, is_remote_spec
from inference.engines.remote_model import RemoteCodeModel


def _sample(model: RemoteCodeModel, prompt: str, max_new_tokens: int) -> dict[str, Any]:
    """One completion: ms to the first text, ms to the end, pieces received, why it ended."""
    started = time.perf_counter()
    first_ms = None
    with model.complete(prompt, max_new_tokens=max_new_tokens) as stream:
        for _ in stream:
            if first_ms is None:
                first_ms = (time.perf_counter() - started) * 1000
    total_ms = (time.perf_counter() - started) * 1000
    return {"first_token_ms": first_ms, "total_ms": total_ms, "tokens": stream.tokens,
            "finish_reason": stream.finish_reason}


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def measure(endpoint: str, prompts: list[str], max_new_tokens: int, repeats: int) -> dict[str, Any]:
    """Latency samples of our backend against the server at `endpoint`.

    `endpoint`: `openai:<base URL>[#model]` or just the base URL (e.g. http://127.0.0.1:8080/v1).
    One unrecorded request warms the connection path first. Returns the model id, the settings
    and, per prompt, its samples (`first_token_ms` is None when no text came) with their medians.
    """
    if repeats < 1 or not prompts:
        raise ValueError("measure needs at least one prompt and one repetition")
    model = RemoteCodeModel(endpoint if is_remote_spec(endpoint) else SPEC_PREFIX + endpoint)
    _sample(model, prompts[0], 1)
    samples: list[list[dict[str, Any]]] = [[] for _ in prompts]
    for _ in range(repeats):
        for index, prompt in enumerate(prompts):
            samples[index].append(_sample(model, prompt, max_new_tokens))
    return {
        "endpoint": model.engine.spec.base_url,
        "model": model.model_id,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        "prompts": [
            {
                "prompt_chars": len(prompt),
                "samples": runs,
                "median_first_token_ms": _median([run["first_token_ms"] for run in runs]),
                "median_total_ms": _median([run["total_ms"] for run in runs]),
                "median_tokens": _median([run["tokens"] for run in runs]),
            }
            for prompt, runs in zip(prompts, samples)
        ],
    }
