"""textDocument/completion: the suggestion as a completion item, for clients without inline completion."""

from __future__ import annotations

from lsprotocol import types

from ..positions import completion_item
from .inline_completion import RULES as INLINE_RULES
from ..session import Codet5Server
from .rules import RequestRules

METHOD = types.TEXT_DOCUMENT_COMPLETION
OPTIONS = types.CompletionOptions(resolve_provider=False)
RULES: RequestRules = INLINE_RULES  # one suggestion per document: each kind supersedes the other


async def handle(ls: Codet5Server, params: types.CompletionParams) -> types.CompletionList:
    context = params.context  # typing re-asks an incomplete list: automatic, as inline completion's typing is
    automatic = context is not None and context.trigger_kind != types.CompletionTriggerKind.Invoked
    suggestion, position = await ls.suggest(params.text_document.uri, params.position, RULES, automatic)
    document = ls.document(params.text_document.uri, RULES)
    items = [] if suggestion is None or document is None else [completion_item(document, position, suggestion.text)]
    return types.CompletionList(is_incomplete=True, items=items)
