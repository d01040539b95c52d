"""Stage: trailing whitespace and trailing blank lines go; nothing but whitespace is no suggestion."""

from __future__ import annotations

from ..request import CompletionRequestText

def drop_blank(completion: str, request: CompletionRequestText) -> str | None:
    """Strip trailing whitespace on each line and trailing blank lines; None when nothing is left.

    The last line keeps its trailing whitespace when code follows the cursor on its line.
    """
    lines = [line.rstrip() for line in completion.split("\n")]
    last = completion.rsplit("\n", 1)[-1]
    if request.line_suffix.strip() and last.strip():
        lines[-1] = last
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    text = "\n".join(lines)
    return text if text.strip() else None
