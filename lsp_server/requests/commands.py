"""workspace/executeCommand: the streamed docstring (`codet5.generateDocstring`) and `codet5.status`."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from ..config import settings_to_json
from ..docstring import GENERATE_DOCSTRING_COMMAND, write_docstring
from ..session import Codet5Server
from .rules import PRIORITY_SUMMARY, RequestRules

STATUS_COMMAND = "codet5.status"
# The docstring run edits the live document (each edit checked against its version), not a snapshot.
GENERATE_DOCSTRING_RULES = RequestRules(snapshot=False, supersedes=False, priority=PRIORITY_SUMMARY)
STATUS_RULES = RequestRules(snapshot=False, supersedes=False, priority=None)


async def generate_docstring(ls: Codet5Server, uri: str, position: types.Position) -> dict[str, Any]:
    _, language, character, position = ls.place(uri, position, GENERATE_DOCSTRING_RULES)
    return (await write_docstring(ls, ls.summarizer, uri, language, position.line, character)).to_json()


def status(ls: Codet5Server, *args: Any) -> dict[str, Any]:
    return {**ls.host.status.to_json(), "settings": settings_to_json(ls.settings),
            "cache": ls.pipeline.cache.stats(), "promptCache": ls.host.prompt_cache_stats(),
            "summaryModel": ls.host.summary_model_stats(),
            "stages": dict(ls.stages), "prewarm": ls.last_prewarm,
            "summaryCache": ls.summarizer.cache.stats(), "noSuggestion": ls.no_suggestions.to_json()}


COMMANDS = {GENERATE_DOCSTRING_COMMAND: generate_docstring, STATUS_COMMAND: status}
