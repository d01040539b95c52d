"""What a user sets about completions (the server's settings of the same names)."""

from __future__ import annotations

from dataclasses import dataclass

COMPLETION_MODES = ("auto", "line", "block")


@dataclass(frozen=True)
class CompletionOptions:
    """The completion pipeline's options, with the defaults a fresh install uses; the time budget
    is the server's (`timeBudgetMs`): a library call or a benchmark has none unless it asks."""

    context_tokens: int = 1024  # prompt and output together (the model's window, if smaller, wins)
    max_new_tokens: int = 48  # of a single-line completion; a block gets 3x, at most 256
    mode: str = "auto"  # one of COMPLETION_MODES: tree-sitter decides, or always a line, or a block
    debounce_ms: int = 50  # an automatic request waits this long for a newer one before it generates
    time_budget_ms: int = 0  # generation stops this long after its job starts on the model (0: no budget)
