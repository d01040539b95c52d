"""Load on the TCP daemon, short: several editors typing at once into one daemon on a tiny model.

The full 10-minute soak on the embedded default model is `python -m bench.soak`; this is its
short form (`CODET5_LOAD_CLIENTS`, default 6; `CODET5_LOAD_SECONDS`, default 30). Pass: no
request fails, the daemon still serves a fresh editor afterwards, and memory does not run
away. `-s` prints the figures (p95 latency, RSS by 10-second window).
"""

from __future__ import annotations

import json
import os

from bench.soak import load
from tests.lsp_harness import RecordingClient, close, end_of, initialize, inline, open_document, start_daemon

CLIENTS = int(os.environ.get("CODET5_LOAD_CLIENTS", "6"))
SECONDS = float(os.environ.get("CODET5_LOAD_SECONDS", "30"))
PREFIX = "def add(a, b):\n    return"


async def test_editors_typing_into_one_daemon_get_every_request_answered(tmp_path, tiny_models):
    process, port = await start_daemon(tmp_path, "--model", str(tiny_models.llama_int8), "--threads", "1")
    try:
        figures = await load(port, process.pid, clients=CLIENTS, seconds=SECONDS, window_s=10, idle_s=2)
        print("\nload:", json.dumps({k: v for k, v in figures.items() if k != "failures"}))
        assert figures["failed"] == 0, figures["failures"]
        assert figures["keystrokes"] >= CLIENTS * SECONDS * 3  # they did type (about 9 keys a second each)
        assert figures["shown"] + figures["empty"] + figures["superseded"] >= figures["keystrokes"] // 4  # answered, not all cancelled
        assert figures["rss_peak_mb"] < 1.5 * figures["rss_start_mb"] + 100  # no runaway memory

        client = RecordingClient()  # the daemon still serves a new editor
        await client.start_tcp("127.0.0.1", port)
        await initialize(client, None)
        open_document(client, "file:///after-load.py", PREFIX)
        assert [i.insert_text for i in (await inline(client, "file:///after-load.py", end_of(PREFIX))).items] == [" a + b"]
        await close(client)
        assert process.returncode is None
    finally:
        process.terminate()
        await process.wait()
