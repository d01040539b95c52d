"""How a request kind runs, as data: the server wiring and the job host read it, handlers do not decide."""

from __future__ import annotations

from dataclasses import dataclass

# The job host's priorities (lower runs first): a suggestion the user waits for, then a summary (a
# hover, a generated docstring), then the next suggestion computed ahead, only while nothing else waits,
# and last the prompt at the cursor computed ahead while the editor is idle (prewarm).
PRIORITY_COMPLETION = 0
PRIORITY_SUMMARY = 10
PRIORITY_SPECULATIVE = 20
PRIORITY_PREWARM = 30
SUMMARY_WAIT_LIMIT_S = 1.0  # a summary queued this long runs before newer completions (job_queue)


@dataclass(frozen=True)
class RequestRules:
    """The concurrency rules of one request kind."""

    snapshot: bool  # sees its document as the request found it (not edits that arrived after it)
    supersedes: bool  # a newer request for the same document cancels this one while it runs (latest wins)
    priority: int | None  # the job host's priority of its model work (lower runs first); None: no model work
