"""Memory released for disuse on the model host, on a fake clock: the summary model is unloaded
and loaded again at the next summary; the completion model's cached prompts are freed (the tiny
models, really loaded and run)."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref

from inference.syntax import function_at
from lsp_server.config import Settings
from lsp_server.docstring import Summarizer
from lsp_server.model_host import ModelHost, load_code_model, run_job
from lsp_server.requests.commands import status
from lsp_server.requests.rules import PRIORITY_COMPLETION
from lsp_server.session import Codet5Server
from tests.engine.test_engine import long_prefix

ADD = function_at("def add(a, b):\n    return a + b\n", "python", 0, 4)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _check(host: ModelHost) -> bool:
    return await asyncio.wrap_future(host.check_idle())


async def _complete(host: ModelHost, prefix: str) -> str:
    return await run_job(host, PRIORITY_COMPLETION, lambda model, stop: model.complete(prefix, max_new_tokens=8).read())


def _host(tiny_models, clock: Clock, loaded: list[str], **idle: int) -> ModelHost:
    """The tiny Llama for completions and the tiny T5 for summaries, each load noted in `loaded`."""

    def factory(settings: Settings, progress) -> object:
        loaded.append(settings.model)
        return load_code_model(settings, progress)

    host = ModelHost(factory, clock)
    host.ensure(Settings(model=str(tiny_models.llama_int8), summary_model=str(tiny_models.t5_int8), threads=1, **idle))
    return host


async def test_the_summary_model_is_unloaded_after_its_idle_period_and_loads_again_at_the_next_summary(tiny_models, caplog):
    clock, loaded = Clock(), []
    host = _host(tiny_models, clock, loaded, summary_idle_unload_s=60)
    try:
        await host.ready()
        first = await Summarizer(host).summary(ADD)
        assert first
        model = weakref.ref(await host.summarizer())
        clock.now += 59
        await _complete(host, "def add(a, b):")  # completions do not keep the summary model
        assert not await _check(host)
        assert host.summary_model_stats() == {"model": str(tiny_models.t5_int8), "loaded": True, "idleUnloads": 0}
        clock.now += 1
        with caplog.at_level(logging.INFO, logger="lsp_server.model_host"):
            assert await _check(host)
        assert "unloaded the summary model" in caplog.text
        assert host.summary_model_stats() == {"model": str(tiny_models.t5_int8), "loaded": False, "idleUnloads": 1}
        gc.collect()
        assert model() is None, "the unloaded summary model is still referenced"
        assert sorted(loaded) == sorted([str(tiny_models.t5_int8), str(tiny_models.llama_int8)])

        assert await Summarizer(host).summary(ADD) == first  # a fresh cache: the model writes it again
        assert loaded.count(str(tiny_models.t5_int8)) == 2
        assert host.summary_model_stats()["loaded"]
    finally:
        host.close()


async def test_the_summary_model_stays_while_summaries_keep_coming(tiny_models):
    clock, loaded = Clock(), []
    host = _host(tiny_models, clock, loaded, summary_idle_unload_s=60)
    try:
        for _ in range(5):  # 200 s in all, never 60 s without a summary
            assert await Summarizer(host).summary(ADD)
            clock.now += 40
            assert not await _check(host)
        assert host.summary_model_stats()["idleUnloads"] == 0
        assert loaded.count(str(tiny_models.t5_int8)) == 1
    finally:
        host.close()


async def test_the_cached_prompts_are_freed_after_the_idle_period_and_completions_stay_the_same(tiny_models, caplog):
    clock = Clock()
    host = ModelHost(clock=clock)
    settings = Settings(model=str(tiny_models.llama_int8), threads=1, prompt_cache_idle_release_s=0)
    host.ensure(settings)
    session = Codet5Server(host)
    try:
        await host.ready()  # a job before the load ends would be refused (the model is loading)
        before = await _complete(host, long_prefix("a"))
        assert before
        assert status(session)["promptCache"] == {"hits": 0, "fills": 1, "refused": 0, "resets": 0, "released": 0}
        clock.now += 3600
        assert not await _check(host)  # 0: never

        host.ensure(Settings(model=str(tiny_models.llama_int8), threads=1, prompt_cache_idle_release_s=60))  # no reload
        clock.now += 3600
        await _complete(host, "def add(a, b):")  # a job on the model: its period starts again
        clock.now += 59
        assert not await _check(host)
        clock.now += 1
        with caplog.at_level(logging.INFO, logger="lsp_server.model_host"):
            assert await _check(host)
        assert "freed 1 cached prompt(s)" in caplog.text
        assert status(session)["promptCache"]["released"] == 1
        assert not await _check(host)  # nothing left to free

        assert await _complete(host, long_prefix("a")) == before
        assert status(session)["promptCache"] == {"hits": 0, "fills": 2, "refused": 0, "resets": 0, "released": 1}
    finally:
        host.close()
