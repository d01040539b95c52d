"""Stage: the end of the completion that the text after the cursor already holds goes."""

from __future__ import annotations

from ..request import CompletionRequestText
from ..scan import imbalance

def _trim_line_suffix(completion: str, request: CompletionRequestText) -> str:
    """Drop the end of the completion that starts the line suffix, unless that unbalances the line."""
    suffix = request.line_suffix.rstrip()
    body = completion.rstrip(" \t")
    if not suffix.strip() or not body:
        return completion
    context = request.text_before()
    before = imbalance(context + completion + request.line_suffix)
    for k in range(min(len(suffix), len(body)), 0, -1):
        tail = suffix[:k]
        if tail.strip() and body.endswith(tail):
            kept = body[:-k]
            if imbalance(context + kept + request.line_suffix) <= before:
                return kept
    return completion


def _trim_next_lines(completion: str, request: CompletionRequestText) -> str:
    """Drop the completion's last lines when the lines after the cursor start with them."""
    following = [line.rstrip() for line in request.next_lines if line.strip()]
    if not following or request.line_suffix.strip():
        return completion
    lines = completion.split("\n")
    full = request.full_lines(lines)
    with_code = [i for i in range(len(lines)) if full[i].strip()]
    first = 0 if not request.line_prefix.strip() else 1
    context, after = request.text_before(), "\n" + "\n".join(request.next_lines)
    for start in (i for i in with_code if i >= first):
        tail = [full[i].rstrip() for i in with_code if i >= start]
        if tail == following[: len(tail)]:
            kept = "\n".join(lines[:start])
            if imbalance(context + kept + after) <= imbalance(context + completion + after):
                return kept
    return completion


def trim_suffix_overlap(completion: str, request: CompletionRequestText) -> str:
    """Remove the end of the completion that the text after the cursor already contains.

    The tail of the completion equal to the start of the line suffix goes (an editor's
    auto-closed bracket or quote, the rest of the line retyped), longest first, as long as the
    line is no less balanced without it; then trailing lines equal to the next lines go.
    """
    return _trim_next_lines(_trim_line_suffix(completion, request), request)
