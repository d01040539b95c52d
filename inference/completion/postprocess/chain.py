"""Post-processing: the stop rule and the stages, in order, until the text no longer changes.

Pure text: no model, no LSP types, every index a Python ``str`` index. The stages (one module
each, beside this one, with their golden files in golden/) only ever shorten the model's text
or rewrite the whitespace at the start and end of its lines; they never add a character the
model did not write. When a rule is in doubt, the model's text is kept.
"""

from __future__ import annotations

from collections.abc import Callable

from ..no_suggestion import NoSuggestion
from ..request import CompletionRequestText
from ..stop import apply_stop
from ..trace import Trace, traced
from .balance_brackets import balance_brackets
from .drop_blank import drop_blank
from .drop_repetition import drop_repetition
from .fix_indentation import fix_indentation
from .skip_blank_lines import skip_leading_blank_lines
from .trim_suffix_overlap import trim_suffix_overlap

Stage = Callable[[str, CompletionRequestText], str]

STAGES: tuple[Stage, ...] = (
    skip_leading_blank_lines,
    trim_suffix_overlap,
    balance_brackets,
    drop_repetition,
    fix_indentation,
)
_MAX_PASSES = 8


# The reason a stage gives when it leaves nothing; any other stage: EMPTY_AFTER_POSTPROCESSING.
_EMPTIED_BY = {
    trim_suffix_overlap: NoSuggestion.DUPLICATES_SUFFIX,
    balance_brackets: NoSuggestion.UNBALANCED,
    drop_repetition: NoSuggestion.REPEATS_ABOVE,
}


def postprocess_explained(raw: str, request: CompletionRequestText, trace: Trace | None = None) -> str | NoSuggestion:
    """Full pipeline on the model's text: the suggestion, or why nothing is left.

    Runs the stop rule (a no-op on text it already cut), the stages in order and `drop_blank`,
    and repeats until the text no longer changes: a cut can bring a new overlap to the end of
    the text, and re-indentation changes how lines compare with their neighbours. The reason is
    the step that first left nothing but whitespace (no stage adds a character). `trace` hears
    each step's output as "postprocess.<step>" ("postprocess.stop" for the stop rule).
    """
    if not raw:
        return NoSuggestion.MODEL_WROTE_NOTHING
    text = raw
    for _ in range(_MAX_PASSES):
        result = traced(trace, "postprocess.stop", lambda: apply_stop(text, request))
        if not result.strip():
            return NoSuggestion.STOP_RULE_KEPT_NOTHING if len(result) < len(text) else NoSuggestion.EMPTY_AFTER_POSTPROCESSING
        for stage in STAGES:
            result = traced(trace, f"postprocess.{stage.__name__}", lambda: stage(result, request))
            if not result.strip():
                return _EMPTIED_BY.get(stage, NoSuggestion.EMPTY_AFTER_POSTPROCESSING)
        cleaned = traced(trace, "postprocess.drop_blank", lambda: drop_blank(result, request))
        if cleaned is None:
            return NoSuggestion.EMPTY_AFTER_POSTPROCESSING
        if cleaned == text:
            return cleaned
        text = cleaned
    return text


def postprocess(raw: str, request: CompletionRequestText) -> str | None:
    """`postprocess_explained` without the reason: the suggestion, or None."""
    result = postprocess_explained(raw, request)
    return result if isinstance(result, str) else None
