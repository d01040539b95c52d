"""textDocument/inlineCompletion: the suggestion as ghost text at the cursor."""

from __future__ import annotations

from lsprotocol import types

from ..session import Codet5Server
from .rules import PRIORITY_COMPLETION, RequestRules

METHOD = types.TEXT_DOCUMENT_INLINE_COMPLETION
OPTIONS = types.InlineCompletionOptions()  # without options pygls does not advertise the feature
RULES = RequestRules(snapshot=True, supersedes=True, priority=PRIORITY_COMPLETION)


async def handle(ls: Codet5Server, params: types.InlineCompletionParams) -> types.InlineCompletionList:
    automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
    suggestion, position = await ls.suggest(params.text_document.uri, params.position, RULES, automatic)
    if suggestion is None:
        return types.InlineCompletionList(items=[])
    here = types.Range(start=position, end=position)
    return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=suggestion.text, range=here)])
