"""Hostile editors for "Generate docstring" (issue 17, items 7, 9 and 12): clients without
versioned edits while the user types, a client that says it applied an edit it skipped, a
client that never answers. Real server subprocess, tiny T5 as the summary model."""

from __future__ import annotations

import asyncio

from lsprotocol import types

from tests.server.test_docstrings_e2e import ADD, PY_URI, PYTHON, EditorClient, editor, position_of, python_docstring, with_docstring


def options(tiny_models) -> dict:
    return {"model": str(tiny_models.llama_int8), "summaryModel": str(tiny_models.t5_int8), "threads": 1}


async def test_without_versioned_edits_the_docstring_comes_in_one_edit(tmp_path, tiny_models):
    async with editor(tmp_path, options(tiny_models), versioned=False) as client:
        client.open(PY_URI, PYTHON, "python")
        result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert result == {"applied": True, "summary": ADD, "reason": None}
        assert len(client.edited) == 1  # not streamed
        assert client.texts[PY_URI] == with_docstring(PYTHON, "python", "add(a, b)", ADD)
        assert client.tokens("report")  # the progress still shows the summary growing
        assert client.tokens("end") == client.tokens("begin")


async def test_typing_elsewhere_before_the_edit_arrives_moves_it_along(tmp_path, tiny_models):
    """The user types on a line below the function while the summary is written."""
    async with editor(tmp_path, options(tiny_models), versioned=False) as client:
        client.open(PY_URI, PYTHON, "python")
        running = asyncio.ensure_future(client.generate(PY_URI, position_of(PYTHON, "add(a, b)")))
        for _ in range(5):
            client.replace(PY_URI, "total = ", "total =  ")
            await asyncio.sleep(0.01)
        result = await running
        typed = client.texts[PY_URI].replace('    """Add two numbers."""\n', "")
        assert result == {"applied": True, "summary": ADD, "reason": None}
        assert client.texts[PY_URI] == with_docstring(typed, "python", "add(a, b)", ADD)


async def test_an_edit_that_lands_in_the_wrong_place_is_taken_out_again(tmp_path, tiny_models):
    """The user adds a line above the function just before the client applies the unversioned
    edit: its positions now point into other code (the hostile suite saw `x = 1 the`)."""
    async with editor(tmp_path, options(tiny_models), versioned=False) as client:
        async def user_types_above(editor_client: EditorClient, uri: str) -> None:
            if not editor_client.edited:
                editor_client.replace(uri, "import math\n", "import math\nimport os\n")

        client.on_receive = user_types_above
        client.open(PY_URI, PYTHON, "python")
        result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert not result["applied"] and "wrong place" in result["reason"] and "taken out again" in result["reason"]
        assert client.texts[PY_URI] == PYTHON.replace("import math\n", "import math\nimport os\n")  # no damage
        assert any("wrong place" in message for message in client.messages)
        assert client.tokens("end") == client.tokens("begin")


def unregister(client: EditorClient, name: str) -> None:
    """Drop the EditorClient's handler of `name`, to register another."""
    del client.protocol.fm._features[name]


class TypingClient(EditorClient):
    """The user edits the function once the run has started (when it asks for its progress token)."""

    def __init__(self) -> None:
        super().__init__()
        unregister(self, types.WINDOW_WORK_DONE_PROGRESS_CREATE)

        @self.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create_progress(params: types.WorkDoneProgressCreateParams) -> None:
            if str(params.token).startswith("codet5-docstring"):
                self.replace(PY_URI, "a + b", "a - b")


async def test_a_change_to_the_function_before_the_single_edit_refuses_it(tmp_path, tiny_models):
    async with editor(tmp_path, options(tiny_models), TypingClient(), versioned=False) as client:
        client.open(PY_URI, PYTHON, "python")
        result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert not result["applied"] and "function changed" in result["reason"]
        assert client.texts[PY_URI] == PYTHON.replace("a + b", "a - b") and not client.edited
        assert any("function changed" in message for message in client.messages)


class SkippingClient(EditorClient):
    """Answers `applied: true` to every edit and applies none."""

    def __init__(self) -> None:
        super().__init__()
        unregister(self, types.WORKSPACE_APPLY_EDIT)

        @self.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            return types.ApplyWorkspaceEditResult(applied=True)


class SilentClient(EditorClient):
    """Answers no edit request until `release` is set (then refuses it, far too late)."""

    def __init__(self) -> None:
        super().__init__()
        unregister(self, types.WORKSPACE_APPLY_EDIT)
        self.release = asyncio.Event()

        @self.feature(types.WORKSPACE_APPLY_EDIT)
        async def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            await self.release.wait()
            return types.ApplyWorkspaceEditResult(applied=False)


async def test_an_edit_reported_applied_but_skipped_is_a_failure(tmp_path, tiny_models):
    for versioned in (True, False):
        async with editor(tmp_path, options(tiny_models), SkippingClient(), versioned) as client:
            client.open(PY_URI, PYTHON, "python")
            client.replace(PY_URI, "total = ", "total  = ")  # the user types: a didChange, but not the edit's
            result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
            assert result == {"applied": False, "summary": "",
                              "reason": "the editor said it applied the edit, but the document does not show it"}
            assert any("does not show it" in message for message in client.messages)
            assert client.tokens("end") == client.tokens("begin")


async def test_an_edit_request_never_answered_ends_the_run(tmp_path, tiny_models):
    async with editor(tmp_path, options(tiny_models), SilentClient(), versioned=True) as client:
        client.open(PY_URI, PYTHON, "python")
        result = await asyncio.wait_for(client.generate(PY_URI, position_of(PYTHON, "add(a, b)")), 60)
        assert not result["applied"] and "did not answer" in result["reason"]
        assert any("did not answer" in message for message in client.messages)
        (token,) = client.tokens("begin")
        assert client.tokens("end") == [token]
        assert python_docstring(client.texts[PY_URI], "add") is None
        client.release.set()
