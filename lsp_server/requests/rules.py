"""How a request kind runs, as data: the server wiring and the job host read it, handlers do not decide."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestRules:
    """The concurrency rules of one request kind."""

    snapshot: bool  # sees its document as the request found it (not edits that arrived after it)
    supersedes: bool  # a newer request for the same document cancels this one while it runs (latest wins)
    priority: int | None  # the job host's priority of its model work (lower runs first); None: no model work
