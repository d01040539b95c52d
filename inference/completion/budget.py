"""The time budget of one completion: where a generation cut short may end."""

from __future__ import annotations

import re

_PARTIAL_WORD = re.compile(r"\w+$")  # an identifier or number the next token could have continued


def clean_prefix(text: str) -> str:
    """The longest start of a generation cut short that reads as finished up to where it ends:
    whole lines once a line has ended after some text, else the text without the word the next
    token could have continued and without trailing whitespace ("" when nothing is left)."""
    body = text.lstrip("\n")
    if "\n" in body.rstrip("\n"):
        return text[: text.rstrip("\n").rfind("\n")].rstrip()
    return _PARTIAL_WORD.sub("", text).rstrip()
