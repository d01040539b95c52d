"""Code actions: "Generate docstring" on a function without one, "Regenerate docstring" on one with one."""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types

from inference.syntax import function_at

GENERATE_DOCSTRING_COMMAND = "codet5.generateDocstring"
DOCSTRING_ACTION_KIND = types.CodeActionKind.RefactorRewrite


def docstring_actions(
    uri: str, text: str, language: str, line: int, character: int, position: types.Position,
    only: Sequence[str] | None = None,
) -> list[types.CodeAction]:
    """The docstring action for the function at (line, character) of `text` (Python string units).

    `position` is the same place in client units: the command gets `[uri, position]`. `only`
    is the client's filter of action kinds.
    """
    if only is not None and not any(DOCSTRING_ACTION_KIND == kind or DOCSTRING_ACTION_KIND.startswith(kind + ".") for kind in only):
        return []
    info = function_at(text, language, line, character)
    if info is None:
        return []
    title = "Regenerate docstring" if info.docstring is not None else "Generate docstring"
    command = types.Command(
        title=title, command=GENERATE_DOCSTRING_COMMAND,
        arguments=[uri, {"line": position.line, "character": position.character}],
    )
    return [types.CodeAction(title=title, kind=DOCSTRING_ACTION_KIND, command=command)]
