"""Load on the TCP daemon, short: several editors typing at once into one daemon on a tiny model.

The full 10-minute soak on the embedded default model is `python -m bench.soak`; this is its
short form (`CODET5_LOAD_CLIENTS`, default 6; `CODET5_LOAD_SECONDS`, default 30). Pass: no
request fails, the daemon still serves a fresh editor afterwards, and memory does not run
away. `-s` prints the figures (p95 latency, RSS by 10-second window).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import os
import threading
import weakref
from types import SimpleNamespace

import pytest

from bench.soak import load
from lsprotocol import types

from lsp_server.config import Settings
from lsp_server.daemon import serve
from lsp_server.model_host import JobStopped, ModelHost
from lsp_server.requests.rules import PRIORITY_COMPLETION
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


async def test_editors_that_pause_hover_and_quit_mid_request_are_all_answered(tmp_path, tiny_models):
    """The outside run's shape (whole files typed in the middle, pauses, hovers, editors that shut
    down with requests in flight): nothing fails, nothing is left unanswered at shutdown."""
    process, port = await start_daemon(tmp_path, "--model", str(tiny_models.llama_int8), "--threads", "1")
    try:
        figures = await load(port, process.pid, clients=4, seconds=SECONDS / 2, window_s=10, idle_s=1,
                             middle=True, abrupt=True, pause_chance=0.1, hover_chance=0.5)
        print("\nload:", json.dumps({k: v for k, v in figures.items() if k != "failures"}))
        assert figures["failed"] == 0, figures["failures"]
        assert figures["unanswered_at_shutdown"] == 0
        assert figures["hovers"] > 0 and figures["shown"] + figures["empty"] > 0
        assert process.returncode is None
    finally:
        process.terminate()
        await process.wait()


class _Prompt:
    """Stands for what a queued completion job holds (its prompt text, its request)."""


async def test_jobs_withdrawn_while_a_long_job_runs_leave_the_queue_at_once():
    # The jobs here only wait or return: the host's queue is under test, not a model.
    host = ModelHost(lambda settings, progress: SimpleNamespace(preset=SimpleNamespace(name="stand-in"), device="cpu", compute_type="int8", runtime="stand-in",
                                                                     prompt_cache_stats=lambda: None, release_cached_prompts=lambda: 0))
    host.ensure(Settings())
    await host.ready()
    release = threading.Event()
    try:
        long_job, _ = host.submit(PRIORITY_COMPLETION, lambda model, stop: release.wait(30))
        while not long_job.running():
            await asyncio.sleep(0.01)
        assert not host.more_urgent_waiting(PRIORITY_COMPLETION + 1)  # one runs, nothing is queued
        held = []
        stale = []
        for _ in range(1000):  # editors typing while the worker is busy: each keystroke supersedes the last
            prompt = _Prompt()
            held.append(weakref.ref(prompt))
            stale.append(host.submit(PRIORITY_COMPLETION, lambda model, stop, prompt=prompt: prompt))
            del prompt
        for i, (future, stop) in enumerate(stale):
            stop.set() if i % 2 else future.cancel()  # superseded (the job is told to stop) or cancelled by the client
        latest, _ = host.submit(PRIORITY_COMPLETION, lambda model, stop: "latest")

        assert not long_job.done()
        for i, (future, _) in enumerate(stale):
            assert future.done()
            if i % 2:
                with pytest.raises(JobStopped):
                    future.result()
            else:
                assert future.cancelled()
        stale.clear()
        gc.collect()
        assert sum(ref() is not None for ref in held) == 0, "withdrawn jobs still hold their prompts"

        assert host.more_urgent_waiting(PRIORITY_COMPLETION + 1)  # the latest waits
        release.set()
        assert await asyncio.wrap_future(latest) == "latest"
    finally:
        release.set()
        host.close()


def _done_futures() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is concurrent.futures.Future and o.done())


async def test_a_daemon_session_keeps_nothing_per_notification():
    host = ModelHost(lambda settings, progress: SimpleNamespace(preset=SimpleNamespace(name="stand-in"), device="cpu", compute_type="int8", runtime="stand-in",
                                                                     prompt_cache_stats=lambda: None, release_cached_prompts=lambda: 0))
    listening: asyncio.Queue[int] = asyncio.Queue()
    daemon = asyncio.ensure_future(serve("127.0.0.1", 0, host, Settings(), on_listening=listening.put_nowait))
    client = RecordingClient()
    try:
        await client.start_tcp("127.0.0.1", await asyncio.wait_for(listening.get(), 30))
        await initialize(client, None)
        uri = "file:///typing.py"
        open_document(client, uri, "x = 0\n")
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))
        before = _done_futures()
        for version in range(2, 1002):  # an editor typing: a thousand didChange notifications
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=f"x = {version}\n")]))
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))  # all handled
        assert _done_futures() - before < 50, "the session keeps a future per notification"
        await close(client)
    finally:
        daemon.cancel()
        await asyncio.gather(daemon, return_exceptions=True)
        host.close()


def test_rss_windows_give_floor_median_and_peak_per_window() -> None:
    from bench.soak import rss_windows

    mb = 2**20
    samples = [(0.5, 100 * mb), (10.0, 300 * mb), (59.0, 200 * mb), (61.0, 150 * mb), (90.0, 250 * mb)]
    assert rss_windows(samples, 60.0) == [
        {"window": 1, "min_mb": 100.0, "median_mb": 200.0, "max_mb": 300.0},
        {"window": 2, "min_mb": 150.0, "median_mb": 200.0, "max_mb": 250.0},
    ]
