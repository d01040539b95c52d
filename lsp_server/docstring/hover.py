"""Hover: the function's signature and the model's one-sentence summary, as markdown."""

from __future__ import annotations

import re

from lsprotocol import types

from ..model_host import JobStopped, ModelUnavailable
from ..syntax import FunctionInfo, function_at
from .summaries import Summarizer

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def hover_markdown(info: FunctionInfo, language: str, summary: str) -> str:
    """A code block with the signature, then the summary (markdown characters escaped)."""
    fence = "````" if "```" in info.signature else "```"
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", summary)
    return f"{fence}{language}\n{info.signature}\n{fence}\n\n{escaped}"


async def function_hover(summarizer: Summarizer, text: str, language: str, line: int, character: int) -> types.Hover | None:
    """The hover for (line, character) of `text` (Python string units); None when no function is there."""
    info = function_at(text, language, line, character)
    if info is None:
        return None
    try:
        summary = await summarizer.summary(info)
    except JobStopped:
        return None
    except ModelUnavailable as exc:
        summary = f"({exc})"
    if not summary:
        summary = "(the model wrote no summary)"
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=hover_markdown(info, language, summary)))
