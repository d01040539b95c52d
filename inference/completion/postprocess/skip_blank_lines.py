"""Stage: on an empty line, a single-line completion's leading blank lines go."""

from __future__ import annotations

from ..request import CompletionRequestText

def skip_leading_blank_lines(completion: str, request: CompletionRequestText) -> str:
    """On an empty line, drop the blank lines a single-line completion starts with, and the
    indentation the user already typed, so the code lands on the cursor's line."""
    if not request.on_blank_line() or not completion.strip() or "\n" not in completion:
        return completion
    first_code = len(completion) - len(completion.lstrip())
    start = completion.rfind("\n", 0, first_code) + 1
    if start == 0:
        return completion
    line = completion[start:]
    return line[len(request.line_prefix):] if line.startswith(request.line_prefix) else line
