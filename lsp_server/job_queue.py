"""The model host's job queue: the most urgent priority first, without starving the others.

Jobs are `(priority, seq, ..., session)` tuples: a lower priority number runs first. Within one
priority the job of the session that has used the worker least lately runs first (`charge` tells
the queue what each job cost; the use decays with a half-life of `USE_HALF_LIFE_S`), then the older
job (lower `seq`): a session whose requests cost three times as much (a larger context, more new
tokens) gets about the same share of the worker's time as the others, not three times it. Editors typing without pause keep completion jobs queued all
the time, so a strict order would make a hover's summary wait for as long as anyone types (an
outside run saw a request wait 63 s). Priorities given a wait limit therefore age: a job of such a
priority that has waited its limit runs before any newer job, whatever their priorities. Negative
priorities (the host's own control items) always come first.
"""

from __future__ import annotations

import heapq
import queue
import time
from collections.abc import Callable, Hashable, Mapping

Clock = Callable[[], float]
USE_HALF_LIFE_S = 10.0


class JobQueue(queue.PriorityQueue):
    """A thread-safe priority queue whose priorities in `wait_limits_s` cannot be starved."""

    def __init__(self, wait_limits_s: Mapping[int, float], clock: Clock = time.monotonic) -> None:
        super().__init__()
        self._wait_limits_s = dict(wait_limits_s)
        self._clock = clock
        self._queued_at: dict[int, float] = {}  # seq -> when the job was queued
        self._use: dict[Hashable, tuple[float, float]] = {}  # session -> (worker seconds, decayed to when)

    def charge(self, session: Hashable, seconds: float) -> None:
        """`session`'s job kept the worker for `seconds`."""
        with self.mutex:
            now = self._clock()
            self._use[session] = (self._used(session, now) + seconds, now)
            for other in [s for s, (_, at) in self._use.items() if now - at > 20 * USE_HALF_LIFE_S]:
                del self._use[other]  # a session gone quiet (or gone) weighs nothing any more

    def _used(self, session: Hashable, now: float) -> float:
        seconds, at = self._use.get(session, (0.0, now))
        return seconds * 0.5 ** ((now - at) / USE_HALF_LIFE_S)

    def drop(self, withdrawn: Callable[[tuple], bool]) -> list[tuple]:
        """Take the jobs for which `withdrawn(job)` is true out of the queue, and return them."""
        with self.mutex:
            dropped = [job for job in self.queue if withdrawn(job)]
            if dropped:
                gone = {id(job) for job in dropped}
                self.queue[:] = [job for job in self.queue if id(job) not in gone]
                heapq.heapify(self.queue)
                for job in dropped:
                    self._queued_at.pop(job[1], None)
            return dropped

    def holds(self, queued: Callable[[tuple], bool]) -> bool:
        """Whether a job for which `queued(job)` is true is in the queue."""
        with self.mutex:
            return any(queued(job) for job in self.queue)

    def head_priority(self) -> int | None:
        """The priority of the most urgent job queued (ageing aside), None when empty."""
        with self.mutex:
            return self.queue[0][0] if self.queue else None

    # queue.Queue's hooks, called with the mutex held
    def _put(self, job: tuple) -> None:
        self._queued_at[job[1]] = self._clock()
        super()._put(job)

    def _get(self) -> tuple:
        now = self._clock()
        head = self.queue[0]
        if head[0] < 0:  # the host's own control item
            job = super()._get()
        else:
            overdue = [job for job in self.queue
                       if job[0] in self._wait_limits_s and now - self._queued_at[job[1]] >= self._wait_limits_s[job[0]]]
            if overdue:
                job = min(overdue, key=lambda item: item[1])
            else:  # the most urgent priority's least-served session, then its oldest job
                job = min((item for item in self.queue if item[0] == head[0]),
                          key=lambda item: (self._used(item[-1], now), item[1]))
            self.queue.remove(job)
            heapq.heapify(self.queue)
        self._queued_at.pop(job[1], None)
        return job
