"""Summaries on the model host with the tiny models: first sentence, what the model reads, the
summary model slot, the cache, and a summary that yields the worker to a completion."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import pytest

from lsp_server.config import Settings
from inference.summary.summaries import code_to_summarize, first_sentence
from lsp_server.docstring import Summarizer
from lsp_server.model_host import ModelHost, ModelUnavailable
from lsp_server.requests.rules import PRIORITY_COMPLETION, SUMMARY_WAIT_LIMIT_S
from inference.syntax import function_at

SOURCE = '''\
def add(a, b):
    return a + b


class Counter:
    def increment(self):
        """Count one more."""
        self.count += 1
        return self.count
'''
ADD = "Add two numbers."


@pytest.fixture
async def host(tiny_models):
    """A host with the tiny Llama for completions and the tiny T5 for summaries, both loaded."""
    host = ModelHost()
    host.ensure(Settings(model=str(tiny_models.llama_int8), summary_model=str(tiny_models.t5_int8), threads=1))
    await host.ready()
    await host.summarizer()
    yield host
    host.close()


def test_first_sentence_is_one_line_and_says_when_it_ended():
    assert first_sentence(" Add two") == ("Add two", False)
    assert first_sentence("Add two\n numbers.") == ("Add two numbers.", False)
    assert first_sentence("Add two numbers. Then more") == ("Add two numbers.", True)
    assert first_sentence("Scale by 1.5 times!\nx") == ("Scale by 1.5 times!", True)


def test_the_model_reads_the_dedented_function_without_its_docstring():
    method = function_at(SOURCE, "python", 5, 9)
    assert code_to_summarize(method) == "def increment(self):\n    self.count += 1\n    return self.count"
    add = function_at(SOURCE, "python", 0, 4)
    assert code_to_summarize(add) == "def add(a, b):\n    return a + b"
    js = function_at("function f(x) {\n  return x;\n}\n", "javascript", 1, 2)
    assert code_to_summarize(js) == "function f(x) {\n  return x;\n}"


async def test_summaries_come_from_the_summary_model_and_then_the_cache(host):
    summarizer = Summarizer(host)
    heard: list[str] = []
    info = function_at(SOURCE, "python", 0, 4)
    assert await summarizer.summary(info, heard.append) == ADD
    assert heard[-1] == ADD and len(heard) > 1
    heard.clear()
    assert await summarizer.summary(info, heard.append) == ADD
    assert heard == [] and (summarizer.cache.hits, summarizer.cache.misses) == (1, 1)


async def test_summaries_leave_for_hovers_and_docstrings_in_the_languages_convention(host):
    """The model writes Python's imperative for every language; what leaves the summarizer (heard
    while it grows, returned, and from the cache) is in the function's doc comment convention."""
    summarizer = Summarizer(host)
    java = function_at("class Calc {\n    int add(int a, int b) {\n        return a + b;\n    }\n}\n", "java", 2, 8)
    heard: list[str] = []
    assert await summarizer.summary(java, heard.append) == "Adds two numbers."
    assert heard[-1] == "Adds two numbers." and "Adds two" in heard and not any(t.startswith("Add ") for t in heard)
    assert await summarizer.summary(java) == "Adds two numbers." and summarizer.cache.hits == 1
    rust = function_at("fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n", "rust", 1, 4)
    assert await summarizer.summary(rust) == ADD  # rustdoc keeps the imperative
    assert await summarizer.summary(function_at(SOURCE, "python", 0, 4)) == ADD


@pytest.mark.parametrize(("waited_s", "order"), [(0.0, ["completion", "summary"]),
                                                 (SUMMARY_WAIT_LIMIT_S, ["summary", "completion"])])
async def test_a_summary_yields_the_worker_to_a_completion_within_its_share(host, waited_s, order):
    """The completion is queued while the summary is between two tokens: it runs first, then
    the summary finishes with the same text, its listener hearing only growing text. Unless the
    summary has waited its share (SUMMARY_WAIT_LIMIT_S, on a fake clock): editors typing without
    pause always have a completion queued, and it would restart for as long as they type."""
    now = [0.0]
    summarizer = Summarizer(host, clock=lambda: now[0])
    started, queued = threading.Event(), threading.Event()
    heard: list[str] = []

    def listen(text: str) -> None:  # on the worker thread, between two tokens of the summary
        heard.append(text)
        if len(heard) == 1:
            now[0] += waited_s
            started.set()
            assert queued.wait(30)

    finished: list[str] = []
    summarizing = asyncio.ensure_future(summarizer.summary(function_at(SOURCE, "python", 0, 4), listen))
    summarizing.add_done_callback(lambda _: finished.append("summary"))
    assert await asyncio.to_thread(started.wait, 30)
    future, _ = host.submit(PRIORITY_COMPLETION, lambda model, stop: model.complete("def add(a, b):\n    return", max_new_tokens=4).read())
    future.add_done_callback(lambda _: finished.append("completion"))
    queued.set()
    assert (await asyncio.wrap_future(future)).startswith(" a + b")
    assert await summarizing == ADD
    assert finished == order
    assert heard[-1] == ADD
    assert all(later.startswith(earlier) and later != earlier for earlier, later in zip(heard, heard[1:]))


async def test_without_a_summary_model_the_completion_model_must_summarize(tiny_models):
    decoder_only = ModelHost()
    decoder_only.ensure(Settings(model=str(tiny_models.llama_int8), threads=1))
    with pytest.raises(ModelUnavailable, match="no summarization model configured"):
        await decoder_only.summarizer()
    decoder_only.close()

    t5 = ModelHost()
    t5.ensure(Settings(model=str(tiny_models.t5_int8), summary_model=str(tiny_models.t5_int8), threads=1))
    assert await t5.summarizer() is await t5.ready()  # the same model is loaded once
    t5.close()


async def test_a_completion_model_that_cannot_summarize_gets_the_embedded_summarizer_at_first_use(tiny_models, monkeypatch):
    """With no summary model set and a completion model that cannot summarize (SmolLM2, say; here
    "default" is made one), the embedded summarizer is used, loaded at the first summary rather
    than with the completion model."""
    import lsp_server.model_host as model_host

    monkeypatch.setattr(model_host, "implied_summary_model", lambda spec: str(tiny_models.t5_int8) if spec == "default" else "")
    loaded: list[str] = []

    def factory(settings: Settings, progress) -> object:
        loaded.append(settings.model)
        return model_host.load_code_model(replace(settings, model=str(tiny_models.llama_int8)) if settings.model == "default"
                                          else settings, progress)

    host = ModelHost(factory)
    host.ensure(Settings(model="default", threads=1))
    await host.ready()
    assert loaded == ["default"]
    model = await host.summarizer()
    assert loaded == ["default", str(tiny_models.t5_int8)] and model.can_summarize
    host.close()


def test_a_summary_without_words_is_never_streamed_or_returned():
    """"Generate docstring" streams what listeners hear and writes nothing for an empty summary:
    text without a word ("." or "()") must reach neither."""
    from inference.summary.summaries import SummaryRun, has_words

    heard: list[str] = []
    run = SummaryRun("def f(): pass", lambda: False, heard.append)
    for text in ("", ".", "()", "Add", "Add two"):
        run._tell(text)
    assert heard == ["Add", "Add two"]
    assert not has_words(" . ") and has_words("Größe.")
