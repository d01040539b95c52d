"""Summaries for hovers and docstrings as job-host work: cached, yielding the worker to completions."""

from __future__ import annotations

import time

from inference.summary.cache import SummaryCache, summary_key
from inference.summary.summaries import Summary, SummaryRun, TextListener, code_to_summarize, has_words
from inference.syntax import FunctionInfo, in_convention

from ..job_queue import Clock
from ..model_host import ROLE_SUMMARY, ModelHost, run_job
from ..requests.rules import PRIORITY_SUMMARY, SUMMARY_WAIT_LIMIT_S


class Summarizer:
    """Summaries of functions for hovers and docstrings, one cache per session."""

    def __init__(self, host: ModelHost, cache: SummaryCache | None = None, clock: Clock = time.monotonic) -> None:
        self.host = host
        self.cache = cache or SummaryCache()
        self.clock = clock

    async def summary(self, info: FunctionInfo, on_text: TextListener | None = None) -> str:
        """The one-sentence summary of `info`'s function ("" if the model wrote none, or nothing
        but punctuation), in its language's doc comment convention (`in_convention`): what a
        hover shows is what "Generate docstring" writes.

        `on_text` hears the summary so far as it grows (only once it has a word), from the
        worker thread; a cached summary is returned without it. Raises ModelUnavailable when no
        model can summarize.
        """
        return (await self.summarize(info, on_text)).text

    async def summarize(self, info: FunctionInfo, on_text: TextListener | None = None) -> Summary:
        """`summary`, with the name of the model that wrote it."""
        model = await self.host.summarizer()
        code = code_to_summarize(info)
        key = summary_key(str(model.path), code)

        def rendered(text: str) -> str:
            return in_convention(text, info.language, info.name) if text else ""

        cached = self.cache.get(key)  # as the model wrote it
        if cached is not None:
            return Summary(rendered(cached), model.preset.name)
        asked = self.clock()
        heard = (lambda text: on_text(rendered(text))) if on_text is not None else None
        run = SummaryRun(code, lambda: self._yields(asked), heard)
        while (summary := await run_job(self.host, PRIORITY_SUMMARY, run, ROLE_SUMMARY)) is None:
            pass  # yielded to a completion: queue the rest behind it
        summary = summary if has_words(summary) else ""
        self.cache.put(key, summary)
        return Summary(rendered(summary), model.preset.name)

    def _yields(self, asked: float) -> bool:
        """Whether a summary asked for at `asked` gives the worker to a waiting completion: only
        within its share of waiting, else editors typing without pause would restart it forever."""
        return self.clock() - asked < SUMMARY_WAIT_LIMIT_S and self.host.more_urgent_waiting(PRIORITY_SUMMARY)
