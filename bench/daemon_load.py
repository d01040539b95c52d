"""N editors on one TCP daemon (N = 1, 2, 4, 8): completions per second and latency.

The editors are `bench.soak`'s typists (real standard-library files typed at 60-160 ms a key, a
didChange and an inline completion request per key, half of them cancelling their previous
request as VS Code does). One daemon serves all the runs, one after another, so the model and its
caches are warm alike for each N. *Completions per second*: answered requests that carried a
suggestion or came back empty at the end of their own run (not superseded, not cancelled), per
second of typing; latency is over those answers.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from .soak import load, start_daemon, wait_until_ready

CLIENTS = (1, 2, 4, 8)


async def _measure(model: str, clients: Sequence[int], seconds: float, threads: int | None) -> list[dict[str, Any]]:
    daemon_args = ["--model", model, "--offline", *(["--threads", str(threads)] if threads else [])]
    process, port = await start_daemon(daemon_args, dict(os.environ))
    runs = []
    try:
        await wait_until_ready(port)
        for count in clients:
            figures = await load(port, process.pid, clients=count, seconds=seconds, window_s=seconds, idle_s=1.0)
            answered = figures["shown"] + figures["empty"]
            runs.append({**figures, "completions_per_s": round(answered / figures["seconds"], 2)})
            print(f"bench load: {count} editors: {runs[-1]['completions_per_s']} completions/s, "
                  f"p95 {figures.get('p95_ms')} ms, failed {figures['failed']}", file=sys.stderr, flush=True)
    finally:
        process.terminate()
        await process.wait()
    return runs


def run(*, model: str = "default", clients: Sequence[int] = CLIENTS, seconds: float = 30.0,
        threads: int | None = None) -> dict[str, Any]:
    """Type with each number of editors in turn for `seconds`; the figures per run."""
    return {"model": model, "seconds_per_run": seconds, "runs": asyncio.run(_measure(model, clients, seconds, threads))}
