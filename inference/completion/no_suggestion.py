"""Why a completion request got no suggestion: a closed set of reasons, and one session's record.

Every empty answer has exactly one reason. The pipeline decides the model's and the
post-processing stages' ones, the server the LSP-level ones (settings, document, superseded).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from enum import Enum
from typing import Any


class NoSuggestion(Enum):
    """Why there is no suggestion. The value is the stable name clients and `codet5.status` see."""

    MODEL_LOADING = "model-loading"
    MODEL_UNAVAILABLE = "model-unavailable"
    MODEL_CANNOT_COMPLETE = "model-cannot-complete"
    COMPLETIONS_OFF = "completions-off"
    LANGUAGE_DISABLED = "language-disabled"
    DOCUMENT_TOO_LARGE = "document-too-large"
    BINARY_DOCUMENT = "binary-document"
    SUPERSEDED = "superseded"
    TIME_BUDGET = "time-budget"
    MODEL_WROTE_NOTHING = "model-wrote-nothing"
    STOP_RULE_KEPT_NOTHING = "stop-rule-kept-nothing"
    DUPLICATES_SUFFIX = "duplicates-suffix"
    UNBALANCED = "unbalanced"
    REPEATS_ABOVE = "repeats-above"
    EMPTY_AFTER_POSTPROCESSING = "empty-after-postprocessing"

    @property
    def description(self) -> str:
        """One sentence for a person."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    NoSuggestion.MODEL_LOADING: "the model was still loading and the request was cancelled or superseded",
    NoSuggestion.MODEL_UNAVAILABLE: "the model failed to load or to run (see the model status)",
    NoSuggestion.MODEL_CANNOT_COMPLETE: "the model cannot complete code (it only summarizes)",
    NoSuggestion.COMPLETIONS_OFF: "completions are turned off (codet5.enabled)",
    NoSuggestion.LANGUAGE_DISABLED: "completions are off for this language (codet5.disabledLanguages)",
    NoSuggestion.DOCUMENT_TOO_LARGE: "the document is too large for completions",
    NoSuggestion.BINARY_DOCUMENT: "the document holds NUL characters (binary data)",
    NoSuggestion.SUPERSEDED: "a newer request (or the editor) cancelled this one",
    NoSuggestion.TIME_BUDGET: "the time budget (codet5.timeBudgetMs) ran out before the model wrote a clean token",
    NoSuggestion.MODEL_WROTE_NOTHING: "the model wrote nothing (it ended at once)",
    NoSuggestion.STOP_RULE_KEPT_NOTHING: "the stop rule kept nothing of what the model wrote",
    NoSuggestion.DUPLICATES_SUFFIX: "the suggestion only repeated the text after the cursor",
    NoSuggestion.UNBALANCED: "the suggestion started with a bracket or quote that fits nothing",
    NoSuggestion.REPEATS_ABOVE: "the suggestion only repeated the lines above",
    NoSuggestion.EMPTY_AFTER_POSTPROCESSING: "nothing but whitespace was left (the model wrote only whitespace)",
}


@dataclass(frozen=True)
class NoSuggestionEvent:
    """One empty answer: why, and where (line and character as the client counts them)."""

    reason: NoSuggestion
    uri: str
    line: int
    character: int

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason.value, "message": self.reason.description, "uri": self.uri,
            "position": {"line": self.line, "character": self.character},
        }


class NoSuggestionLog:
    """Counts per reason and the last few empty answers of one session."""

    def __init__(self, keep: int = 10) -> None:
        self.counts: Counter[NoSuggestion] = Counter()
        self.recent: deque[NoSuggestionEvent] = deque(maxlen=keep)

    def record(self, reason: NoSuggestion, uri: str, line: int, character: int) -> NoSuggestionEvent:
        event = NoSuggestionEvent(reason, uri, line, character)
        self.counts[reason] += 1
        self.recent.append(event)
        return event

    def to_json(self) -> dict[str, Any]:
        """`{"counts": {reason: n}, "recent": [event, ...]}`, the newest event last."""
        return {"counts": {reason.value: n for reason, n in self.counts.items()},
                "recent": [event.to_json() for event in self.recent]}
