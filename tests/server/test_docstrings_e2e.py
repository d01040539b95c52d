"""End to end: hover summaries and the streamed "Generate docstring" command, driven by pygls's
LanguageClient acting as an editor (it applies the server's edits to its own copy of the text
and reports them with didChange) against the real server, with the tiny T5 as summary model."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Union

import cattrs
import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.protocol import default_converter

from inference.syntax import format_docstring, function_at
from tests.lsp_harness import SERVER, close, end_of, inline, server_env

PY_URI = "file:///work/corpus.py"
JS_URI = "file:///work/add.js"
PYTHON = '''\
import math


def add(a, b):
    return a + b


def greet(name):
    return "Hello, " + name


class Counter:
    def __init__(self):
        self.count = 0

    def increment(self):
        self.count += 1
        return self.count


total = add(1, 2)
'''
JAVASCRIPT = "function add(a, b) {\n  return a + b;\n}\n\nconsole.log(add(1, 2));\n"
DOCUMENTED = 'def add(a, b):\n    """Sum."""\n    return a + b\n'
ADD = "Add two numbers."


def offset_at(text: str, position: types.Position) -> int:
    """String offset of an LSP position (UTF-16 characters)."""
    lines = text.splitlines(keepends=True)
    start = sum(len(line) for line in lines[: position.line])
    line = lines[position.line] if position.line < len(lines) else ""
    units = 0
    for index, char in enumerate(line):
        if units >= position.character:
            return start + index
        units += len(char.encode("utf-16-le")) // 2
    return start + len(line)


def position_of(text: str, needle: str, shift: int = 0) -> types.Position:
    """The position of `needle`'s first character (plus `shift`) in ASCII `text`."""
    offset = text.index(needle) + shift
    before = text[:offset]
    return types.Position(line=before.count("\n"), character=offset - (before.rfind("\n") + 1))


def with_docstring(text: str, language: str, needle: str, summary: str) -> str:
    """`text` plus exactly the docstring `format_docstring` writes for the function at `needle`."""
    where = position_of(text, needle)
    info = function_at(text, language, where.line, where.character)
    assert info is not None
    if info.docstring_range is not None:
        start_line, start_char, end_line, end_char = info.docstring_range
        start = offset_at(text, types.Position(line=start_line, character=start_char))
        end = offset_at(text, types.Position(line=end_line, character=end_char))
        return text[:start] + format_docstring(summary, info).strip() + text[end:]
    at = offset_at(text, types.Position(line=info.insert_line, character=info.insert_character))
    return text[:at] + format_docstring(summary, info) + text[at:]


def python_docstring(text: str, name: str) -> str | None:
    """The docstring of function or method `name` in `text` (which must parse)."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_docstring(node, clean=False)
    raise AssertionError(f"no function {name}")


def client_converter() -> cattrs.Converter:
    """pygls's converter, except that a CodeAction holding a Command stays a CodeAction
    (lsprotocol 2025.0.0 reads any object with a "command" key as a Command)."""
    converter = default_converter()

    def command_or_action(value: Any, _: type) -> types.Command | types.CodeAction:
        return converter.structure(value, types.Command if isinstance(value.get("command"), str) else types.CodeAction)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], command_or_action)
    return converter


EditHook = Callable[["EditorClient", str], Awaitable[None]]


class EditorClient(LanguageClient):
    """A client that keeps its documents' text, applies `workspace/applyEdit` like an editor
    (checking versioned edits), reports each change with didChange, and records progress."""

    def __init__(self) -> None:
        super().__init__("codet5-docstring-tests", "0", converter_factory=client_converter)
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self.edited: list[str] = []  # the document text after each applied server edit
        self.progress: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[str] = []
        self.on_receive: EditHook | None = None  # runs when an edit arrives, before it is applied
        self.on_edit: EditHook | None = None  # runs after an edit is applied, before the reply
        self.rejected = 0

        @self.feature(types.WORKSPACE_APPLY_EDIT)
        async def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            if self.on_receive is not None:
                await self.on_receive(self, PY_URI)
            if params.edit.document_changes:
                (change,) = params.edit.document_changes
                uri, edits = change.text_document.uri, change.edits
                if change.text_document.version != self.versions[uri]:
                    self.rejected += 1
                    return types.ApplyWorkspaceEditResult(applied=False, failure_reason="version mismatch")
            else:
                ((uri, edits),) = params.edit.changes.items()
            for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
                self.change(uri, edit.range, edit.new_text)
            self.edited.append(self.texts[uri])
            if self.on_edit is not None:
                await self.on_edit(self, uri)
            return types.ApplyWorkspaceEditResult(applied=True)

        @self.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create_progress(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.feature(types.PROGRESS)
        def on_progress(params: types.ProgressParams) -> None:
            value = params.value
            as_dict = value if isinstance(value, dict) else getattr(value, "_asdict", lambda: vars(value))()
            self.progress.append((str(params.token), as_dict))

        @self.feature(types.WINDOW_SHOW_MESSAGE)
        def show_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params.message)

        @self.feature("codet5/status")
        def status(params: Any) -> None:
            return None

    def open(self, uri: str, text: str, language: str) -> None:
        self.texts[uri], self.versions[uri] = text, 1
        self.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)))

    def change(self, uri: str, where: types.Range, new_text: str) -> None:
        """Replace `where` in the document and tell the server, as an editor does for any edit."""
        text = self.texts[uri]
        self.texts[uri] = text[: offset_at(text, where.start)] + new_text + text[offset_at(text, where.end) :]
        self.versions[uri] += 1
        self.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangePartial(range=where, text=new_text)]))

    def replace(self, uri: str, old: str, new: str) -> None:
        """The user replaces the first `old` in the document with `new`."""
        text = self.texts[uri]
        start = position_of(text, old)
        self.change(uri, types.Range(start=start, end=position_of(text, old, len(old))), new)

    def tokens(self, kind: str) -> list[str]:
        """Tokens of the docstring runs' progress messages of `kind` (the model load has its own)."""
        return [token for token, value in self.progress if value.get("kind") == kind and token.startswith("codet5-docstring")]

    async def hover(self, uri: str, position: types.Position) -> types.Hover | None:
        return await self.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position))

    async def actions(self, uri: str, position: types.Position, only: list[str] | None = None) -> list[types.CodeAction]:
        result = await self.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=position, end=position),
            context=types.CodeActionContext(diagnostics=[], only=only)))
        return list(result or [])

    async def command(self, name: str, *arguments: Any) -> Any:
        return await self.workspace_execute_command_async(types.ExecuteCommandParams(command=name, arguments=list(arguments)))

    async def generate(self, uri: str, position: types.Position) -> dict[str, Any]:
        """Run the docstring action offered at `position`, as an editor does when it is chosen."""
        (action,) = await self.actions(uri, position)
        return await self.command(action.command.command, *action.command.arguments)

    async def summary_cache(self) -> dict[str, int]:
        return (await self.command("codet5.status"))["summaryCache"]


@asynccontextmanager
async def editor(tmp_path, options: dict, client: EditorClient | None = None, versioned: bool = True):
    """An editor that declares (or not) `workspace.workspaceEdit.documentChanges`."""
    client = client or EditorClient()
    await client.start_io(*SERVER, env=server_env(tmp_path))
    try:
        await client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(
                window=types.WindowClientCapabilities(work_done_progress=True),
                workspace=types.WorkspaceClientCapabilities(
                    apply_edit=True, workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=versioned))),
            initialization_options=options))
        client.initialized(types.InitializedParams())
        yield client
    finally:
        await close(client)


@pytest.fixture
def options(tiny_models) -> dict:
    return {"model": str(tiny_models.llama_int8), "summaryModel": str(tiny_models.t5_int8), "threads": 1}


async def test_hover_summarizes_and_caches_by_function_text(tmp_path, options):
    async with editor(tmp_path, options) as client:
        client.open(PY_URI, PYTHON, "python")
        hover = await client.hover(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert hover.contents.kind == types.MarkupKind.Markdown
        assert hover.contents.value == (
            f"```python\ndef add(a, b):\n```\n\n*No docstring in the source; summary generated by the model `t5-int8`:*\n\n{ADD}")
        assert await client.summary_cache() == {"hits": 0, "misses": 1, "size": 1, "capacity": 512}

        again = await client.hover(PY_URI, position_of(PYTHON, "return a + b"))
        called = await client.hover(PY_URI, position_of(PYTHON, "add(1, 2)"))  # a call to it
        assert again.contents.value == called.contents.value == hover.contents.value
        method = await client.hover(PY_URI, position_of(PYTHON, "increment"))
        assert method.contents.value.endswith("Increment the counter and return it.")
        greet = await client.hover(PY_URI, position_of(PYTHON, "greet"))
        assert greet.contents.value.endswith("Return a greeting for a name.")
        assert {k: v for k, v in (await client.summary_cache()).items() if k != "capacity"} == {"hits": 2, "misses": 3, "size": 3}

        client.replace(PY_URI, '"Hello, "', '"Hi, "')  # edits greet only
        await client.hover(PY_URI, position_of(client.texts[PY_URI], "add(a, b)"))
        await client.hover(PY_URI, position_of(client.texts[PY_URI], "increment"))
        await client.hover(PY_URI, position_of(client.texts[PY_URI], "greet"))
        cache = await client.summary_cache()
        assert (cache["hits"], cache["misses"]) == (4, 4)

        assert await client.hover(PY_URI, position_of(PYTHON, "import math")) is None
        assert await client.hover(PY_URI, position_of(PYTHON, "total")) is None


async def test_code_actions_offer_generate_or_regenerate(tmp_path, options):
    async with editor(tmp_path, options) as client:
        client.open(PY_URI, PYTHON, "python")
        client.open("file:///work/documented.py", DOCUMENTED, "python")
        (action,) = await client.actions(PY_URI, position_of(PYTHON, "a + b"))
        assert (action.title, action.kind) == ("Generate docstring", types.CodeActionKind.RefactorRewrite)
        assert action.command.command == "codet5.generateDocstring"
        assert list(action.command.arguments) == [PY_URI, {"line": 4, "character": 11}]
        (again,) = await client.actions("file:///work/documented.py", position_of(DOCUMENTED, "Sum"))
        assert again.title == "Regenerate docstring"
        assert await client.actions(PY_URI, position_of(PYTHON, "import math")) == []
        assert await client.actions(PY_URI, position_of(PYTHON, "a + b"), only=[types.CodeActionKind.QuickFix]) == []
        assert len(await client.actions(PY_URI, position_of(PYTHON, "a + b"), only=[types.CodeActionKind.Refactor])) == 1


async def test_generate_docstring_streams_edits_into_python(tmp_path, options):
    async with editor(tmp_path, options) as client:
        client.open(PY_URI, PYTHON, "python")
        result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert result == {"applied": True, "summary": ADD, "reason": None}
        assert client.texts[PY_URI] == with_docstring(PYTHON, "python", "add(a, b)", ADD)
        assert len(client.edited) >= 3  # streamed: the docstring grows edit by edit
        partial = [python_docstring(text, "add") for text in client.edited]  # every state parses
        assert all(ADD.startswith(doc) for doc in partial) and partial[-1] == ADD
        assert [len(doc) for doc in partial] == sorted({len(doc) for doc in partial})

        (token,) = client.tokens("begin")
        begin = next(value for t, value in client.progress if t == token and value["kind"] == "begin")
        assert begin["cancellable"] is True
        assert client.tokens("report") and client.tokens("end") == [token]

        before = client.texts[PY_URI]
        method = await client.generate(PY_URI, position_of(before, "increment"))
        assert method["summary"] == "Increment the counter and return it."
        assert client.texts[PY_URI] == with_docstring(before, "python", "increment", method["summary"])
        assert python_docstring(client.texts[PY_URI], "increment") == method["summary"]


async def test_generate_docstring_in_javascript_goes_above_the_function(tmp_path, options):
    async with editor(tmp_path, options) as client:
        client.open(JS_URI, JAVASCRIPT, "javascript")
        result = await client.generate(JS_URI, position_of(JAVASCRIPT, "add(1, 2)"))  # from a call
        assert result["applied"] and result["reason"] is None and result["summary"]
        assert client.texts[JS_URI] == with_docstring(JAVASCRIPT, "javascript", "function add", result["summary"])
        assert client.texts[JS_URI].startswith("/**\n * ")

        crlf_uri, crlf = "file:///work/crlf.js", "// math\r\n" + JAVASCRIPT.replace("\n", "\r\n")
        client.open(crlf_uri, crlf, "javascript")
        result = await client.generate(crlf_uri, position_of(crlf, "a + b"))
        assert client.texts[crlf_uri] == with_docstring(crlf, "javascript", "a + b", result["summary"])
        assert "\r\n/**\r\n * " in client.texts[crlf_uri]


async def test_java_and_rust_hovers_show_what_generate_docstring_writes_in_their_convention(tmp_path, options):
    """The tiny T5 writes "Add two numbers." (Python's imperative) for these; Javadoc wants the
    third person, "Adds two numbers.", rustdoc keeps it (`in_convention`), and each hover shows
    the sentence its doc comment gets."""
    java = "class Calc {\n    int add(int a, int b) {\n        return a + b;\n    }\n}\n"
    rust = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"
    async with editor(tmp_path, options) as client:
        for uri, text, language, summary in (("file:///work/Calc.java", java, "java", "Adds two numbers."),
                                             ("file:///work/calc.rs", rust, "rust", ADD)):
            client.open(uri, text, language)
            hover = await client.hover(uri, position_of(text, "a + b"))
            assert hover.contents.value.endswith(f"summary generated by the model `t5-int8`:*\n\n{summary}")
            result = await client.generate(uri, position_of(text, "a + b"))
            assert result == {"applied": True, "summary": summary, "reason": None}
            assert client.texts[uri] == with_docstring(text, language, "a + b", summary)
        assert "    /**\n     * Adds two numbers.\n     */\n    int add(" in client.texts["file:///work/Calc.java"]
        assert client.texts["file:///work/calc.rs"].startswith("/// Add two numbers.\nfn add(")


async def test_regenerate_replaces_the_existing_docstring(tmp_path, options):
    async with editor(tmp_path, options) as client:
        client.open(PY_URI, DOCUMENTED, "python")
        result = await client.generate(PY_URI, position_of(DOCUMENTED, "return"))
        assert result == {"applied": True, "summary": ADD, "reason": None}
        assert client.texts[PY_URI] == with_docstring(DOCUMENTED, "python", "return", ADD)
        assert client.texts[PY_URI] == f'def add(a, b):\n    """{ADD}"""\n    return a + b\n'


async def test_cancelling_the_progress_leaves_a_well_formed_docstring(tmp_path, options):
    async with editor(tmp_path, options) as client:
        async def cancel(editor_client: EditorClient, uri: str) -> None:
            (token,) = editor_client.tokens("begin")
            editor_client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))

        client.on_edit = cancel
        client.open(PY_URI, PYTHON, "python")
        result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert (result["applied"], result["reason"]) == (True, "cancelled")
        assert len(client.edited) == 1 and ADD.startswith(result["summary"]) and result["summary"] != ADD
        assert client.texts[PY_URI] == with_docstring(PYTHON, "python", "add(a, b)", result["summary"])
        assert python_docstring(client.texts[PY_URI], "add") == result["summary"]
        assert client.tokens("end") == client.tokens("begin")


async def test_an_edit_to_the_function_stops_the_stream(tmp_path, options):
    async with editor(tmp_path, options) as client:
        async def user_types(editor_client: EditorClient, uri: str) -> None:
            editor_client.replace(uri, "a + b", "a - b")

        client.on_edit = user_types
        client.open(PY_URI, PYTHON, "python")
        result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert result["applied"] and "changed" in result["reason"]
        assert len(client.edited) == 1  # nothing written after the user's edit
        expected = with_docstring(PYTHON, "python", "add(a, b)", result["summary"]).replace("a + b", "a - b")
        assert client.texts[PY_URI] == expected


async def test_an_edit_elsewhere_moves_the_stream_along(tmp_path, options):
    async with editor(tmp_path, options) as client:
        async def user_types_above(editor_client: EditorClient, uri: str) -> None:
            if len(editor_client.edited) == 1:
                editor_client.replace(uri, "import math\n", "import math\nimport os\n")

        client.on_edit = user_types_above
        client.open(PY_URI, PYTHON, "python")
        result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert result == {"applied": True, "summary": ADD, "reason": None}
        assert len(client.edited) >= 2
        moved = PYTHON.replace("import math\n", "import math\nimport os\n")
        assert client.texts[PY_URI] == with_docstring(moved, "python", "add(a, b)", ADD)


async def test_an_edit_crossing_the_users_typing_is_rejected_and_sent_again(tmp_path, options):
    async with editor(tmp_path, options) as client:
        async def user_types_first(editor_client: EditorClient, uri: str) -> None:
            if len(editor_client.edited) == 1 and not editor_client.rejected:  # the second edit meets a keystroke
                editor_client.replace(uri, "total = ", "total  = ")

        client.on_receive = user_types_first
        client.open(PY_URI, PYTHON, "python")
        result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert result == {"applied": True, "summary": ADD, "reason": None}
        assert client.rejected == 1
        typed = PYTHON.replace("total = ", "total  = ")
        assert client.texts[PY_URI] == with_docstring(typed, "python", "add(a, b)", ADD)


async def test_a_slow_editor_does_not_hold_completions_back(tmp_path, options):
    async with editor(tmp_path, options) as client:
        first_edit, release = asyncio.Event(), asyncio.Event()

        async def slow_editor(editor_client: EditorClient, uri: str) -> None:
            first_edit.set()
            await release.wait()

        client.on_edit = slow_editor
        client.open(PY_URI, PYTHON, "python")
        prefix = "def add(a, b):\n    return"
        client.open("file:///work/typing.py", prefix, "python")
        generating = asyncio.ensure_future(client.generate(PY_URI, position_of(PYTHON, "add(a, b)")))
        await asyncio.wait_for(first_edit.wait(), 60)
        completion = await asyncio.wait_for(inline(client, "file:///work/typing.py", end_of(prefix)), 30)
        assert [item.insert_text for item in completion.items] == [" a + b"]
        assert not generating.done()  # the docstring run is still streaming
        release.set()
        assert (await generating)["summary"] == ADD


async def test_without_a_summarization_model_the_answer_says_so(tmp_path, tiny_models):
    async with editor(tmp_path, {"model": str(tiny_models.llama_int8), "threads": 1}) as client:
        client.open(PY_URI, PYTHON, "python")
        hover = await client.hover(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert "no summarization model configured" in hover.contents.value
        result = await client.generate(PY_URI, position_of(PYTHON, "add(a, b)"))
        assert not result["applied"] and "no summarization model configured" in result["reason"]
        assert client.texts[PY_URI] == PYTHON and not client.edited
        assert any("no summarization model configured" in message for message in client.messages)
