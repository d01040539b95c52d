"""The trace hook: each named stage of a completion reports its output and its time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class StageEvent:
    """One stage's result: `stage` is a pipeline stage ("cache", "syntax", "context", "prompt",
    "generate", "postprocess") or a post-processing step ("postprocess.<name>")."""

    stage: str
    output: Any
    ms: float


Trace = Callable[[StageEvent], None]


def traced(trace: Trace | None, stage: str, run: Callable[[], T]) -> T:
    """`run()`, reported to `trace` (when there is one) under the name `stage`."""
    if trace is None:
        return run()
    start = time.perf_counter()
    output = run()
    trace(StageEvent(stage, output, (time.perf_counter() - start) * 1000))
    return output
