"""textDocument/codeAction: "Generate docstring" / "Regenerate docstring" on the function at the cursor."""

from __future__ import annotations

import asyncio
from lsprotocol import types

from ..docstring import DOCSTRING_ACTION_KIND, docstring_actions
from ..session import Codet5Server
from .rules import RequestRules

METHOD = types.TEXT_DOCUMENT_CODE_ACTION
OPTIONS = types.CodeActionOptions(code_action_kinds=[DOCSTRING_ACTION_KIND])
RULES = RequestRules(snapshot=True, supersedes=False, priority=None)


async def handle(ls: Codet5Server, params: types.CodeActionParams) -> list[types.CodeAction]:
    """The docstring actions at the range's start; an empty range tells where the cursor rests
    (clients without `codet5/cursor` ask at every rest), which the prewarm uses."""
    document, language, character, position = ls.place(params.text_document.uri, params.range.start, RULES)
    if params.range.start == params.range.end:
        ls.cursor_at(params.text_document.uri, position)
    return await asyncio.to_thread(docstring_actions, params.text_document.uri, document.source, language, position.line,
                                   character, position, params.context.only) if language else []
