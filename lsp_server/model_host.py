"""The model host: loads the models in the background and runs generation jobs on one worker.

Shared by every client of a daemon. It holds the completion model and, when
`Settings.summary_model` names another one, a summary model. Jobs for either run one at a time
in priority order (completions before summaries); a job that was cancelled before it started
is skipped, a running job is told to stop through its `threading.Event`, and a long job can
ask `more_urgent_waiting` between steps to yield the worker.

Memory a model holds for nobody is released on the worker, between jobs: a summary model
unused for `Settings.summary_idle_unload_s` is unloaded (the next summary loads it again, as the
first did), and the completion model's cached prompts are freed after
`Settings.prompt_cache_idle_release_s` without a job on it.
"""

from __future__ import annotations

import asyncio
import gc
import concurrent.futures
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from inference.models.embedded import implied_summary_model
from inference.engines.memory import release_free_memory
from inference.engines.openai_backend import is_remote_spec
from inference.engines.stream import JobStopped

from .config import Settings
from .job_queue import Clock, JobQueue
from .requests.rules import PRIORITY_SUMMARY, SUMMARY_WAIT_LIMIT_S

if TYPE_CHECKING:
    from inference.engines.completion_model import CompletionModel

log = logging.getLogger(__name__)
T = TypeVar("T")

_CONTROL_PRIORITY = -1  # the host's own items (close, an idle check): before every job
TRIM_INTERVAL_S = 10.0  # under constant load, give freed heap memory back this often
IDLE_CHECK_S = 5.0  # a worker without jobs looks for idle models this often
ROLE_COMPLETION = "completion"  # the job runs on the completion model
ROLE_SUMMARY = "summary"  # the job runs on the summary model (the completion model if none is set)


class ModelState(str, Enum):
    IDLE = "idle"
    LOADING = "loading"
    READY = "ready"
    ERROR = "error"


@dataclass(frozen=True)
class HostStatus:
    state: ModelState
    model: str
    message: str = ""
    device: str = ""
    compute_type: str = ""
    runtime: str = ""  # what runs the model (CompletionModel.runtime)

    def to_json(self) -> dict[str, str]:
        """The `codet5/status` notification's params (and the start of `codet5.status`'s answer)."""
        return {
            "state": self.state.value, "model": self.model, "message": self.message,
            "device": self.device, "computeType": self.compute_type, "runtime": self.runtime,
        }


class ModelUnavailable(RuntimeError):
    """No model can serve the request (it failed to load, or none is configured)."""


Listener = Callable[[HostStatus], None]
ModelFactory = Callable[[Settings, Callable[[str], None]], "CompletionModel"]


def load_code_model(settings: Settings, progress: Callable[[str], None]) -> CompletionModel:
    """Load the model the settings describe; a device that is not here is said first."""
    if not is_remote_spec(settings.model):
        from inference.engines.devices import check_device  # loads the runtime: only when a model loads

        check_device(settings.device)
    from inference.engines.loading import load_model  # a local model loads the runtime: only when a model loads

    return load_model(
        settings.model,
        device=settings.device,
        compute_type=settings.compute_type,
        runtime=settings.runtime,
        cpu_threads=settings.threads,
        local_files_only=settings.local_files_only,
        trust_remote_code=settings.trust_remote_code,
        max_cached_prompts=settings.max_cached_prompts,
        draft_tokens=settings.draft_tokens,
        progress=progress,
    )


class ModelHost:
    """The loaded models, the completion model's load state, and the job queue in front of them."""

    def __init__(self, factory: ModelFactory = load_code_model, clock: Clock = time.monotonic) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._model: CompletionModel | None = None
        self._key: tuple | None = None
        self._loaded: concurrent.futures.Future[CompletionModel] | None = None
        self._summary_model: CompletionModel | None = None
        self._summary_key: tuple | None = None  # None: the completion model summarizes
        self._summary_loaded: concurrent.futures.Future[CompletionModel] | None = None
        self._summary_pending: tuple[Settings, concurrent.futures.Future] | None = None  # loaded at its next use
        self._summary_settings: Settings | None = None  # how the summary model loads
        self.status = HostStatus(ModelState.IDLE, "")
        self._clock = clock
        self._jobs = JobQueue({PRIORITY_SUMMARY: SUMMARY_WAIT_LIMIT_S}, clock)
        # Per model slot (ROLE_COMPLETION, ROLE_SUMMARY): the seconds of disuse after which its memory is
        # released (0: never), and when it was last asked for.
        self._idle_after_s = {ROLE_COMPLETION: 0.0, ROLE_SUMMARY: 0.0}
        self._last_used = dict.fromkeys(self._idle_after_s, clock())
        self.summary_unloads = 0
        self._seq = itertools.count()
        self._running: threading.Event | None = None  # the stop event of the job running now
        self._loaders: list[threading.Thread] = []
        self._trimmed = time.monotonic()  # when freed heap memory was last given back
        self._worker = threading.Thread(target=self._work, name="model-worker", daemon=True)
        self._worker.start()

    # -- state -----------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` on every status change (from any thread); returns the unsubscribe."""
        with self._lock:
            self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _set_status(self, status: HostStatus) -> None:
        self.status = status
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:  # a closed connection must not break the others
                log.exception("status listener failed")

    def ensure(self, settings: Settings) -> None:
        """Start loading the models `settings` describe, unless they are the ones loaded or loading.

        A load that failed is tried again: the user may have fixed the fault. The idle periods
        take effect at once.
        """
        self._idle_after_s = {ROLE_COMPLETION: settings.prompt_cache_idle_release_s,
                              ROLE_SUMMARY: settings.summary_idle_unload_s}
        self._ensure_summarizer(settings)
        with self._lock:
            if settings.model_key() == self._key and not _failed(self._loaded):
                return
            self._key = settings.model_key()
            future: concurrent.futures.Future[CompletionModel] = concurrent.futures.Future()
            self._loaded = future
        self._start_loader(self._load, settings, future, "model-loader")

    def _load(self, settings: Settings, future: concurrent.futures.Future) -> None:
        name = settings.model
        self._set_status(HostStatus(ModelState.LOADING, name, "Loading model"))
        try:
            model = self._factory(settings, lambda msg: self._set_status(HostStatus(ModelState.LOADING, name, msg)))
        except Exception as exc:
            message = f"Cannot load model {name!r}: {exc}"
            log.error("%s", message, exc_info=log.isEnabledFor(logging.DEBUG))  # the traceback only with -v
            if future is self._loaded:
                self._set_status(HostStatus(ModelState.ERROR, name, message))
            future.set_exception(ModelUnavailable(message))
            return
        if future is not self._loaded:  # superseded by a newer ensure()
            future.set_result(model)
            return
        self._model = model
        self._set_status(HostStatus(ModelState.READY, model.preset.name, "Ready", model.device, model.compute_type,
                                    model.runtime))
        future.set_result(model)

    def _ensure_summarizer(self, settings: Settings) -> None:
        """Start loading `settings.summary_model` unless it is empty or the completion model.

        With none set and a completion model that cannot summarize, the embedded summarizer is
        used, loaded at the first summary rather than now (it is a second model in memory).
        """
        name = settings.summary_model or implied_summary_model(settings.model)
        summary = replace(settings, model=name)
        key = summary.model_key() if name and summary.model_key() != settings.model_key() else None
        with self._lock:
            if key == self._summary_key and not _failed(self._summary_loaded):
                return
            self._summary_key, self._summary_model, self._summary_settings = key, None, summary
            future: concurrent.futures.Future[CompletionModel] | None = None if key is None else concurrent.futures.Future()
            self._summary_loaded = future
            self._summary_pending = (summary, future) if future is not None and not settings.summary_model else None
            self._last_used[ROLE_SUMMARY] = self._clock()
        if future is not None and settings.summary_model:
            self._start_loader(self._load_summarizer, summary, future, "summary-loader")

    def _start_loader(self, load: Callable[[Settings, concurrent.futures.Future], None], settings: Settings,
                      future: concurrent.futures.Future, name: str) -> None:
        thread = threading.Thread(target=load, args=(settings, future), name=name, daemon=True)
        with self._lock:
            self._loaders = [t for t in self._loaders if t.is_alive()] + [thread]
        thread.start()

    def _load_summarizer(self, settings: Settings, future: concurrent.futures.Future) -> None:
        try:
            model = self._factory(settings, lambda message: log.info("summary model: %s", message))
        except Exception as exc:
            message = f"Cannot load summary model {settings.model!r}: {exc}"
            log.error("%s", message, exc_info=log.isEnabledFor(logging.DEBUG))
            future.set_exception(ModelUnavailable(message))
            return
        with self._lock:
            if future is self._summary_loaded:
                self._summary_model = model
                self._last_used[ROLE_SUMMARY] = self._clock()  # its idle period starts now, not when its load began
        future.set_result(model)

    async def summarizer(self) -> CompletionModel:
        """The model that writes summaries, waiting for a load in progress: the summary model
        when one is set, else the completion model. ModelUnavailable if it cannot summarize."""
        with self._lock:
            pending, self._summary_pending = self._summary_pending, None
            self._last_used[ROLE_SUMMARY] = self._clock()
        if pending is not None:
            self._start_loader(self._load_summarizer, *pending, "summary-loader")
        future = self._summary_loaded
        model = await (asyncio.shield(asyncio.wrap_future(future)) if future is not None else self.ready())
        if not model.can_summarize:
            raise ModelUnavailable(
                f"no summarization model configured: {model.preset.name} cannot summarize code (set codet5.summaryModel)"
            )
        return model

    def prompt_cache_stats(self) -> dict[str, int] | None:
        """The completion model's prompt cache counters, if it has that cache."""
        model = self._model
        return model.prompt_cache_stats() if model is not None else None

    def summary_model_stats(self) -> dict[str, Any] | None:
        """Whether the summary model is in memory and how often it was unloaded for disuse; None
        when the completion model summarizes."""
        if self._summary_key is None:
            return None
        return {"model": self._summary_key[0], "loaded": self._summary_model is not None, "idleUnloads": self.summary_unloads}

    async def ready(self) -> CompletionModel:
        """The loaded model, waiting for a load in progress; ModelUnavailable if it failed."""
        future = self._loaded
        if future is None:
            raise ModelUnavailable("no model is configured")
        return await asyncio.shield(asyncio.wrap_future(future))

    def close(self) -> None:
        """Stop the running job, end the worker and release the models now.

        The runtime's threads must not outlive the interpreter: a generation still running in
        the worker, or a model still loading, when the process exits (the editor went away
        mid-request) aborted it. A load in progress is waited for.
        """
        running = self._running
        if running is not None:
            running.set()
        self._jobs.put((_CONTROL_PRIORITY, next(self._seq), None, None, None, None, None))  # ahead of every queued job
        self._worker.join(timeout=30)
        for loader in list(self._loaders):  # a model half-built at exit aborts the process too
            loader.join(timeout=30)
        with self._lock:
            self._model = self._summary_model = None
            self._key = self._summary_key = self._summary_pending = self._summary_settings = None
        gc.collect()

    def check_idle(self) -> concurrent.futures.Future[bool]:
        """Have the worker release what went unused for its idle period, after the job running
        now (it also looks after every job, and every IDLE_CHECK_S without one); the future
        tells whether anything was released."""
        future: concurrent.futures.Future[bool] = concurrent.futures.Future()
        self._jobs.put((_CONTROL_PRIORITY, next(self._seq), future, threading.Event(), None, None, None))
        return future

    # -- jobs ------------------------------------------------------------------------------
    def submit(
        self, priority: int, job: Callable[[CompletionModel, threading.Event], T], role: str = ROLE_COMPLETION,
        session: Hashable = None,
    ) -> tuple[concurrent.futures.Future[T], threading.Event]:
        """Queue `job(model, stop)` for the model of `role` on behalf of `session` (the queue shares
        the worker's time between sessions); returns its future and the event that asks it to stop."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        stop = threading.Event()
        self._drop_withdrawn()
        self._last_used[self._slot(role)] = self._clock()
        self._jobs.put((priority, next(self._seq), future, stop, job, role, session))
        return future, stop

    def _slot(self, role: str | None) -> str:
        """The model a job of `role` runs on: ROLE_SUMMARY for the summary model, else ROLE_COMPLETION."""
        return ROLE_SUMMARY if role == ROLE_SUMMARY and self._summary_key is not None else ROLE_COMPLETION

    def _drop_withdrawn(self) -> None:
        """Take the jobs that were cancelled or told to stop out of the queue now.

        They would be skipped when their turn came, but while a long job runs, editors typing
        without pause queue thousands of them (each holding its prompt and its request): the
        process grew by that backlog and the superseded requests were answered only minutes later.
        """
        withdrawn = self._jobs.drop(lambda item: item[2] is not None and (item[2].cancelled() or item[3].is_set()))
        for _, _, future, *_ in withdrawn:
            if future.set_running_or_notify_cancel():
                future.set_exception(JobStopped())

    def more_urgent_waiting(self, priority: int) -> bool:
        """Whether a job of a more urgent priority (a lower number) is queued."""
        head = self._jobs.head_priority()
        return head is not None and head < priority

    def _work(self) -> None:
        while True:
            try:
                _, _, future, stop, job, role, session = self._jobs.get(timeout=IDLE_CHECK_S)
            except queue.Empty:
                if self._release_idle():
                    release_free_memory()
                continue
            if future is None:  # close()
                return
            if job is not None:
                self._run(future, stop, job, role, session)
            released = self._release_idle()
            if job is None and future.set_running_or_notify_cancel():  # check_idle()
                future.set_result(released)
            # Idle, or busy for a while (editors typing without pause never leave the worker
            # idle): hand the generations' freed buffers back to the OS.
            if released or self._jobs.empty() or time.monotonic() - self._trimmed > TRIM_INTERVAL_S:
                release_free_memory()
                self._trimmed = time.monotonic()

    def _run(self, future: concurrent.futures.Future, stop: threading.Event, job: Callable, role: str,
             session: Hashable) -> None:
        """Run one job on its model, unless it was cancelled or told to stop while queued."""
        if not future.set_running_or_notify_cancel():
            return
        if stop.is_set():
            future.set_exception(JobStopped())
            return
        summary = self._slot(role) == ROLE_SUMMARY
        model = self._summary_model if summary else self._model
        if model is None:
            future.set_exception(ModelUnavailable("the summary model is not loaded" if summary
                                                  else self.status.message or "the model is not loaded"))
            return
        self._running = stop
        started = time.monotonic()
        try:
            result, error = job(model, stop), None
        except BaseException as exc:
            result, error = None, exc
        self._running = None
        self._jobs.charge(session, time.monotonic() - started)
        self._last_used[self._slot(role)] = self._clock()  # before the caller hears of the result
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def _idle(self, slot: str, now: float) -> bool:
        """Whether the model of `slot` went unused for its idle period, with no job queued for it."""
        period = self._idle_after_s[slot]
        return (0 < period <= now - self._last_used[slot]
                and not self._jobs.holds(lambda item: item[4] is not None and self._slot(item[5]) == slot))

    def _release_idle(self) -> bool:
        """Release the memory of the models that went unused for their idle period (on the worker,
        between jobs); whether anything was released."""
        now = self._clock()
        released = self._unload_summarizer(now)
        if self._model is not None and self._idle(ROLE_COMPLETION, now) and (prompts := self._model.release_cached_prompts()):
            log.info("freed %d cached prompt(s) of the completion model: no job for %g s (promptCacheIdleReleaseS)",
                     prompts, self._idle_after_s[ROLE_COMPLETION])
            released = True
        return released

    def _unload_summarizer(self, now: float) -> bool:
        """Drop the summary model if it went unused for its idle period; the next `summarizer()`
        loads it again. Whether it was dropped."""
        with self._lock:  # a `summarizer()` call either comes first (and it is in use) or loads it again
            if self._summary_model is None or self._summary_settings is None or not self._idle(ROLE_SUMMARY, now):
                return False
            name = self._summary_model.preset.name
            future: concurrent.futures.Future[CompletionModel] = concurrent.futures.Future()
            self._summary_model, self._summary_loaded = None, future
            self._summary_pending = (self._summary_settings, future)
            self.summary_unloads += 1
        gc.collect()  # a model in a reference cycle would hold its memory until the next collection
        log.info("unloaded the summary model %s: no summary for %g s (summaryIdleUnloadS); the next summary loads it again",
                 name, self._idle_after_s[ROLE_SUMMARY])
        return True


def _failed(future: concurrent.futures.Future | None) -> bool:
    return future is not None and future.done() and future.exception() is not None


class HostWorker:
    """The completion pipeline's `Worker` on a host: the completion model, jobs at `priority` on
    behalf of `session` (None: the host's only client)."""

    def __init__(self, host: ModelHost, priority: int, session: Hashable = None) -> None:
        self.host = host
        self.priority = priority
        self.session = session

    async def model(self) -> CompletionModel:
        return await self.host.ready()

    async def run(self, job: Callable[[CompletionModel, threading.Event], T]) -> T:
        return await run_job(self.host, self.priority, job, session=self.session)


async def run_job(
    host: ModelHost, priority: int, job: Callable[[CompletionModel, threading.Event], Any], role: str = ROLE_COMPLETION,
    session: Hashable = None,
) -> Any:
    """Run a job on the host from asyncio; cancelling the awaiting task stops the job."""
    future, stop = host.submit(priority, job, role, session)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        stop.set()
        future.cancel()
        raise
