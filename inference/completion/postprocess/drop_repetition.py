"""Stage: the completion ends where it starts repeating the lines just before."""

from __future__ import annotations

from ..request import CompletionRequestText

def drop_repetition(completion: str, request: CompletionRequestText) -> str:
    """Cut the completion where it starts repeating the lines just before.

    Lines are compared as they read in the file (indentation included, blank lines skipped):
    where a block of lines written by the model equals the block right above it (the previous
    lines or the completion's own), the completion ends before it. This catches the model
    copying the line above, loops, and a completion identical to what is already there.
    """
    lines = completion.split("\n")
    full = request.full_lines(lines)
    previous = [line.rstrip() for line in request.prev_lines if line.strip()]
    index = [i for i in range(len(lines)) if full[i].strip()]
    seq = previous + [full[i].rstrip() for i in index]
    written = [False] * len(previous) + [bool(lines[i].strip()) for i in index]  # line 0 may be all prefix
    for j in range(len(previous), len(seq)):
        for size in range(1, min(j, len(seq) - j) + 1):
            block = seq[j : j + size]
            if (
                block == seq[j - size : j]
                and any(ch.isalnum() for line in block for ch in line)
                and any(written[j : j + size])
            ):
                return "\n".join(lines[: index[j - len(previous)]])
    return completion
