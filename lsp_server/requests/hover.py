"""textDocument/hover: the function's own documentation, else a generated one-sentence summary."""

from __future__ import annotations

from lsprotocol import types

from ..docstring import function_hover
from ..session import Codet5Server
from .rules import PRIORITY_SUMMARY, RequestRules

METHOD = types.TEXT_DOCUMENT_HOVER
OPTIONS = None
RULES = RequestRules(snapshot=True, supersedes=False, priority=PRIORITY_SUMMARY)


async def handle(ls: Codet5Server, params: types.HoverParams) -> types.Hover | None:
    document, language, character, position = ls.place(params.text_document.uri, params.position, RULES)
    return await function_hover(ls.summarizer, document.source, language, position.line, character) if language else None
