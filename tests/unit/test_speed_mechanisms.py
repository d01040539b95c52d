"""Issue 13's mechanisms, each on the tiny real models with a fake clock and scripted typing:
the debounce of automatic requests, the stop checks between stages, the time budget, the
speculative next suggestion (unit and through a real LSP client), and a daemon's per-session limits."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from lsprotocol import types

from inference.completion.budget import clean_prefix
from inference.completion.no_suggestion import NoSuggestion
from inference.completion.options import CompletionOptions
from inference.completion.pipeline import CompletionPipeline, CompletionRequest, DirectWorker
from inference.completion.trace import StageEvent
from inference.completion.typeahead import TypeaheadCache
from inference.engines.model import CodeModel
from inference.engines.stream import JobStopped
from lsp_server.config import SessionLimits, Settings, parse_settings
from tests.lsp_harness import RecordingClient, close, end_of, initialize, inline, open_document, start_daemon, stdio_client

URI = "file:///work/add.py"
ADD = "def add(a, b):\n    return"  # the tiny Llama writes " a + b" here


@pytest.fixture(scope="module")
def model(tiny_models) -> CodeModel:
    return CodeModel(str(tiny_models.llama_int8), cpu_threads=1)


class CountingWorker(DirectWorker):
    """The model in this thread, counting the generation jobs it was given."""

    def __init__(self, model: CodeModel) -> None:
        super().__init__(model)
        self.jobs = 0

    async def run(self, job):
        self.jobs += 1
        return await super().run(job)


class Gate:
    """A fake `sleep`: returns when the test opens the gate, whatever the duration asked."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.open = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await self.open.wait()


def _request(automatic: bool, **options) -> CompletionRequest:
    return CompletionRequest(URI, ADD, 1, len("    return"), "python", CompletionOptions(**options), automatic=automatic)


# -- debounce and stop checks ------------------------------------------------------------------
async def test_a_superseded_automatic_request_ends_in_its_debounce_without_model_work(model):
    gate, worker, events = Gate(), CountingWorker(model), []
    pipeline = CompletionPipeline(TypeaheadCache(), sleep=gate, clock=lambda: 0.0)
    superseded = False
    task = asyncio.ensure_future(pipeline.suggest(_request(True, debounce_ms=120), worker, trace=events.append,
                                                  stale=lambda: superseded))
    await asyncio.sleep(0)
    assert gate.asked == [0.12]  # waiting in the debounce
    superseded = True  # the next key's request arrived
    gate.open.set()
    with pytest.raises(JobStopped):
        await task
    assert worker.jobs == 0 and [e.stage for e in events] == ["cache", "debounce"]


async def test_an_invoked_request_is_not_debounced_and_an_automatic_one_that_stays_latest_runs(model):
    gate, worker, events = Gate(), CountingWorker(model), []
    pipeline = CompletionPipeline(sleep=gate, clock=lambda: 0.0)
    invoked = await pipeline.suggest(_request(False, debounce_ms=120), worker, trace=events.append)
    assert invoked is not None and invoked.text == " a + b" and gate.asked == []
    assert "debounce" not in [e.stage for e in events]
    gate.open.set()
    automatic = await pipeline.suggest(_request(True, debounce_ms=120), worker)
    assert automatic is not None and automatic.text == " a + b" and gate.asked == [0.12] and worker.jobs == 2


@pytest.mark.parametrize("stage", ["context", "prompt", "generate"])
async def test_a_request_found_stale_after_a_stage_stops_there(model, stage):
    worker, events = CountingWorker(model), []
    pipeline = CompletionPipeline()
    stale = False

    def trace(event: StageEvent) -> None:
        nonlocal stale
        events.append(event.stage)
        stale = stale or event.stage == stage

    with pytest.raises(JobStopped):
        await pipeline.suggest(_request(False), worker, trace=trace, stale=lambda: stale)
    assert events[-1] == stage and "postprocess" not in events
    assert worker.jobs == (1 if stage == "generate" else 0)


# -- time budget -------------------------------------------------------------------------------
def test_clean_prefix_keeps_whole_lines_or_drops_the_word_a_token_could_continue():
    assert clean_prefix(" a + b") == " a +"
    assert clean_prefix(" foo(self.ca") == " foo(self."
    assert clean_prefix("turn x") == "turn"
    assert clean_prefix("turn") == ""
    assert clean_prefix("\n    x = 1\n    y = ab") == "\n    x = 1"
    assert clean_prefix("") == ""


def _stepping_clock(step_s: float):
    """A fake clock that moves `step_s` forward at each reading (the budget reads it once at the
    start and once per generated token)."""
    ticks = itertools.count()
    return lambda: next(ticks) * step_s


def test_an_expired_budget_returns_the_clean_part_written_so_far(model):
    full = CompletionPipeline().complete(_request(False, time_budget_ms=0), model)
    assert full is not None and full.text == " a + b"
    reasons: list[NoSuggestion] = []
    for tokens in range(1, 6):
        pipeline = CompletionPipeline(clock=_stepping_clock(1.0))
        cut = pipeline.complete(_request(False, time_budget_ms=tokens * 1000), model, on_empty=reasons.append)
        if cut is None:
            continue
        assert full.text.startswith(cut.text) and cut.text == clean_prefix(cut.text) or cut.text == full.text
    assert all(reason is NoSuggestion.TIME_BUDGET for reason in reasons)


def test_a_budget_that_expires_before_any_clean_token_gives_no_suggestion_with_its_reason(model):
    reasons: list[NoSuggestion] = []
    pipeline = CompletionPipeline(TypeaheadCache(), clock=_stepping_clock(10.0))
    assert pipeline.complete(_request(False, time_budget_ms=1), model, on_empty=reasons.append) is None
    assert reasons == [NoSuggestion.TIME_BUDGET]
    assert NoSuggestion("time-budget") is NoSuggestion.TIME_BUDGET and "timeBudgetMs" in NoSuggestion.TIME_BUDGET.description


# -- speculative next suggestion ---------------------------------------------------------------
def test_the_accepted_request_has_the_suggestion_inserted_and_the_cursor_after_it():
    request = CompletionRequest(URI, "x = f(\ny = 2\n", 0, 6, "python", automatic=True)
    accepted = request.accepted("a)\nz = 3")
    assert accepted.text == "x = f(a)\nz = 3\ny = 2\n" and (accepted.line, accepted.character) == (1, 5)
    assert accepted.offset == len("x = f(a)\nz = 3") and not accepted.automatic
    ended = request.accepted("a)\n")
    assert (ended.line, ended.character) == (1, 0)


def test_a_speculation_survives_typing_its_suggestion_and_nothing_else():
    from lsp_server.session import Speculation

    # "return" + " a +" shown; the speculation computes the document with it accepted
    speculation = Speculation(ADD + " a +\n", len(ADD), len(ADD + " a +"), task=None, cancelled=None)
    assert speculation.leads_to(ADD + "\n") and speculation.leads_to(ADD + " a\n", len(ADD + " a"))
    assert speculation.leads_to(ADD + " a +\n")  # the accept itself
    assert not speculation.leads_to(ADD + " a\n", len(ADD))  # the cursor elsewhere
    assert not speculation.leads_to(ADD + " b\n")  # another character
    assert not speculation.leads_to(ADD[:-1] + "\n")  # a deletion before the suggestion
    assert not speculation.leads_to(ADD + " a +\nx")  # an edit after it


async def test_a_speculative_result_is_served_only_for_the_accepted_document(model):
    cache = TypeaheadCache()
    pipeline = CompletionPipeline(cache)
    first = _request(False, max_new_tokens=1)
    shown = await pipeline.suggest(first, DirectWorker(model))
    assert shown is not None and shown.text == " a +"
    accepted = first.accepted(shown.text)
    ahead = await pipeline.suggest(accepted, DirectWorker(model), speculative=True)
    assert ahead is not None and ahead.text == " b" and cache.misses == 1  # computed for the cache: no lookup
    served = await pipeline.suggest(accepted, DirectWorker(model))
    assert served is not None and served.from_cache and served.text == " b"
    other = CompletionRequest(URI, ADD + " a -", 1, len("    return a -"), "python", first.options)
    assert cache.lookup(URI, other.text, "") is None
    assert cache.stats() == {"hits": 1, "speculativeHits": 1, "misses": 2}


async def test_after_an_accept_that_completes_its_line_the_next_line_is_computed_ahead(model):
    cache = TypeaheadCache()
    pipeline = CompletionPipeline(cache)
    first = _request(False)
    shown = await pipeline.suggest(first, DirectWorker(model))
    assert shown is not None and shown.text == " a + b"  # the whole line: nothing follows on it
    accepted = first.accepted(shown.text)
    ahead = await pipeline.speculate(accepted, DirectWorker(model))
    assert ahead is not None and ahead.text == "\ndef greet(name):"  # the next line, as after Enter
    served = await pipeline.suggest(accepted, DirectWorker(model))
    assert served is not None and served.from_cache and served.text == "\ndef greet(name):"  # at once after the accept
    entered = accepted.entered()
    assert entered.text == ADD + " a + b\n" and (entered.line, entered.character) == (2, 0)
    typed = await pipeline.suggest(entered, DirectWorker(model))
    assert typed is not None and typed.from_cache and typed.text == "def greet(name):"  # and after the Enter
    assert cache.stats()["speculativeHits"] == 2


async def test_an_accept_cut_short_continues_its_line_and_one_inside_a_line_gets_no_next_line(model):
    pipeline = CompletionPipeline(TypeaheadCache())
    first = _request(False, max_new_tokens=1)
    shown = await pipeline.suggest(first, DirectWorker(model))
    assert shown is not None and shown.text == " a +"
    ahead = await pipeline.speculate(first.accepted(shown.text), DirectWorker(model))
    assert ahead is not None and ahead.text == " b"  # the line goes on: no line break
    inside = CompletionRequest(URI, ADD + " a + b)", 1, len("    return a + b"), "python", CompletionOptions(mode="line"))
    within = await pipeline.speculate(inside, DirectWorker(model))
    assert within is None or "\n" not in within.text  # text after the cursor: never the next line


def test_enter_inserts_the_line_s_own_line_break():
    crlf = CompletionRequest(URI, "x = 1\r\ny = 2\r\n", 0, 5, "python")
    assert (crlf.entered().text, crlf.entered().line, crlf.entered().character) == ("x = 1\r\n\r\ny = 2\r\n", 1, 0)
    last = CompletionRequest(URI, "a\rb", 1, 1, "python")  # the last line has none: the document's
    assert last.entered().text == "a\rb\r"
    assert CompletionRequest(URI, "x", 0, 1, "python").entered().text == "x\n"


async def test_through_the_server_the_next_suggestion_is_served_after_an_accept_and_dropped_after_another_edit(
        tmp_path, tiny_models):
    options = {"model": str(tiny_models.llama_int8), "threads": 1, "maxNewTokens": 1}
    async with stdio_client(tmp_path, options) as (client, _):
        await client.wait_for(lambda c: c.state() == "ready")
        open_document(client, URI, ADD)
        first = await inline(client, URI, end_of(ADD))
        assert [item.insert_text for item in first.items] == [" a +"]
        client.text_document_did_change(_insert(URI, 2, end_of(ADD), " a +"))  # Tab: the suggestion accepted
        after_accept = await inline(client, URI, end_of(ADD + " a +"))
        assert [item.insert_text for item in after_accept.items] == [" b"]
        status = await _status(client)
        assert status["cache"]["speculativeHits"] == 1
        assert status["stages"]["speculative.generate"] >= 1 and status["stages"]["cache"] == 2

        client.text_document_did_change(_insert(URI, 3, end_of(ADD + " a +"), " b"))  # accepted again
        client.text_document_did_change(_insert(URI, 4, end_of(ADD + " a + b"), "  # other"))  # then another edit
        await inline(client, URI, end_of(ADD + " a + b  # other"))
        status = await _status(client)
        assert status["cache"]["speculativeHits"] == 1  # what was computed ahead for " a + b" was not served


async def test_through_the_server_accepting_a_whole_line_shows_the_next_line_at_once(tmp_path, tiny_models):
    options = {"model": str(tiny_models.llama_int8), "threads": 1, "completionMode": "line"}
    async with stdio_client(tmp_path, options) as (client, _):
        await client.wait_for(lambda c: c.state() == "ready")
        open_document(client, URI, ADD)
        first = await inline(client, URI, end_of(ADD))
        assert [item.insert_text for item in first.items] == [" a + b"]
        client.text_document_did_change(_insert(URI, 2, end_of(ADD), " a + b"))  # Tab
        after_accept = await inline(client, URI, end_of(ADD + " a + b"))
        assert [item.insert_text for item in after_accept.items] == ["\ndef greet(name):"]
        client.text_document_did_change(_insert(URI, 3, end_of(ADD + " a + b"), "\n"))  # Enter
        after_enter = await inline(client, URI, types.Position(line=2, character=0))
        assert [item.insert_text for item in after_enter.items] == ["def greet(name):"]
        assert (await _status(client))["cache"]["speculativeHits"] == 2


def _insert(uri: str, version: int, at: types.Position, text: str) -> types.DidChangeTextDocumentParams:
    return types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=text)])


async def _status(client: RecordingClient) -> dict:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codet5.status"))


# -- settings and a fair daemon ----------------------------------------------------------------
def test_the_speed_settings_are_validated_and_reach_the_pipeline():
    settings, errors = parse_settings({"debounceMs": 50, "timeBudgetMs": 800, "speculative": False})
    assert errors == [] and not settings.speculative
    options = settings.completion_options()
    assert (options.debounce_ms, options.time_budget_ms) == (50, 800)
    _, errors = parse_settings({"debounceMs": -1, "timeBudgetMs": "fast", "speculative": 1})
    assert len(errors) == 3


def test_session_limits_lower_what_one_editor_may_ask_for():
    greedy = Settings(max_new_tokens=512, context_tokens=8192, time_budget_ms=60000)
    clamped, messages = SessionLimits().clamp(greedy)
    assert (clamped.max_new_tokens, clamped.context_tokens, clamped.time_budget_ms) == (128, 2048, 3000)
    assert len(messages) == 3 and all("shared daemon" in m for m in messages)
    # The default budget (none) becomes the daemon's limit without a message: the editor asked for nothing.
    assert SessionLimits().clamp(Settings()) == (Settings(time_budget_ms=3000), [])


async def test_a_daemon_clamps_a_greedy_session_and_keeps_one_completion_per_session(tmp_path, tiny_models):
    process, port = await start_daemon(tmp_path, "--model", str(tiny_models.llama_int8), "--threads", "1")
    try:
        greedy, modest = RecordingClient(), RecordingClient()
        for client, options in ((greedy, {"maxNewTokens": 512, "contextTokens": 8192, "debounceMs": 1000}),
                                (modest, None)):
            await client.start_tcp("127.0.0.1", port)
            await initialize(client, options)
            open_document(client, URI, ADD)
        settings = (await _status(greedy))["settings"]
        assert (settings["maxNewTokens"], settings["contextTokens"]) == (128, 2048)
        assert any("shared daemon" in m.message for m in greedy.messages)
        other = "file:///work/other.py"
        open_document(greedy, other, ADD)
        first = asyncio.ensure_future(inline(greedy, URI, end_of(ADD)))  # waits in its 1 s debounce ...
        await asyncio.sleep(0.05)
        second, served = await asyncio.gather(inline(greedy, other, end_of(ADD)), inline(modest, URI, end_of(ADD)))
        assert not (await first).items  # ... and is superseded by the same session's next request
        assert [i.insert_text for i in second.items] == [" a + b"] == [i.insert_text for i in served.items]
        assert (await _status(greedy))["noSuggestion"]["counts"] == {"superseded": 1}
        for client in (greedy, modest):
            await close(client)
    finally:
        process.terminate()
        await process.wait()
