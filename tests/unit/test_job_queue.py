"""The model host's job queue: urgent jobs first, summaries never starved (a fake clock)."""

from __future__ import annotations

from lsp_server.job_queue import USE_HALF_LIFE_S, JobQueue
from lsp_server.requests.rules import PRIORITY_COMPLETION, PRIORITY_SPECULATIVE, PRIORITY_SUMMARY, SUMMARY_WAIT_LIMIT_S

CLOSE = -1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _queue() -> tuple[JobQueue, Clock]:
    clock = Clock()
    return JobQueue({PRIORITY_SUMMARY: SUMMARY_WAIT_LIMIT_S}, clock), clock


def _drain(jobs: JobQueue) -> list[str]:
    names = []
    while not jobs.empty():
        names.append(jobs.get_nowait()[2])
    return names


def test_the_most_urgent_priority_runs_first_and_the_oldest_within_one():
    jobs, _ = _queue()
    for seq, (priority, name) in enumerate([(PRIORITY_SPECULATIVE, "next"), (PRIORITY_SUMMARY, "hover"),
                                            (PRIORITY_COMPLETION, "key 1"), (PRIORITY_COMPLETION, "key 2")]):
        jobs.put((priority, seq, name, None))
    assert _drain(jobs) == ["key 1", "key 2", "hover", "next"]


def test_a_summary_that_waited_its_limit_runs_before_newer_completions():
    """Editors typing without pause keep completions queued: the hover still gets its turn."""
    jobs, clock = _queue()
    jobs.put((PRIORITY_SUMMARY, 0, "hover", None))
    served = []
    for seq in range(1, 40):  # a completion queued and served every 100 ms
        clock.now = seq * 0.1
        jobs.put((PRIORITY_COMPLETION, seq, f"key {seq}", None))
        served.append(jobs.get_nowait()[2])
    assert "hover" in served
    assert served.index("hover") == round(SUMMARY_WAIT_LIMIT_S / 0.1) - 1  # at its limit, not before


def test_ageing_never_passes_the_hosts_close_item_nor_reorders_completions():
    jobs, clock = _queue()
    jobs.put((PRIORITY_SUMMARY, 0, "hover", None))
    jobs.put((PRIORITY_COMPLETION, 1, "key 1", None))
    jobs.put((PRIORITY_SPECULATIVE, 2, "next", None))
    clock.now = 60.0  # everything long overdue; only summaries age
    jobs.put((PRIORITY_COMPLETION, 3, "key 2", None))
    jobs.put((CLOSE, 4, "close", None))
    assert _drain(jobs) == ["close", "hover", "key 1", "key 2", "next"]


def test_dropped_jobs_leave_the_queue_and_the_rest_keep_their_order():
    jobs, clock = _queue()
    for seq, name in enumerate(["a", "b", "c"]):
        jobs.put((PRIORITY_COMPLETION, seq, name, None))
    jobs.put((PRIORITY_SUMMARY, 3, "hover", None))
    assert [job[2] for job in jobs.drop(lambda job: job[2] in ("b", "hover"))] == ["b", "hover"]
    assert jobs.head_priority() == PRIORITY_COMPLETION
    clock.now = 60.0
    assert _drain(jobs) == ["a", "c"]
    assert jobs.head_priority() is None


def test_sessions_get_shares_of_the_workers_time_not_of_its_queue():
    """Two editors with a completion always queued; editor A's cost 3 s each, B's 1 s: first come,
    first served would give A 75% of the worker; by use, both get about half."""
    jobs, clock = _queue()
    cost = {"A": 3.0, "B": 1.0}
    seq = 0
    for session in cost:
        jobs.put((PRIORITY_COMPLETION, seq, session, session))
        seq += 1
    used = {"A": 0.0, "B": 0.0}
    while clock.now < 120:
        _, _, _, session = jobs.get_nowait()
        clock.now += cost[session]
        used[session] += cost[session]
        jobs.charge(session, cost[session])
        jobs.put((PRIORITY_COMPLETION, seq, session, session))  # the editor asks again at once
        seq += 1
    share = used["A"] / sum(used.values())
    assert 0.4 <= share <= 0.6, used


def test_past_use_fades_so_a_session_that_was_busy_long_ago_is_not_held_back():
    jobs, clock = _queue()
    jobs.charge("A", 30.0)
    jobs.charge("B", 1.0)
    jobs.put((PRIORITY_COMPLETION, 0, "A's", "A"))
    jobs.put((PRIORITY_COMPLETION, 1, "B's", "B"))
    assert jobs.get_nowait()[2] == "B's"  # A used far more lately
    clock.now = 10 * USE_HALF_LIFE_S
    jobs.charge("B", 1.0)  # B busy just now; A's 30 s have faded to 0.03 s
    jobs.put((PRIORITY_COMPLETION, 2, "B's again", "B"))
    assert _drain(jobs) == ["A's", "B's again"]
