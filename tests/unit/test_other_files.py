"""Context from other open documents: which chunks are picked, how they are laid out, and that the
choice stays the same while the user types inside one chunk (the prompt's cached part holds)."""

from dataclasses import replace

from inference.completion.context import Neighbourhood, build_context
from inference.completion.options import CompletionOptions
from inference.completion.other_files import (
    CHUNK_LINES,
    MAX_CHUNKS,
    OtherFile,
    file_name,
    identifiers,
    pick_chunks,
    query_lines,
    render,
)
from inference.models.prompt_formats import STATIC_CHUNK_LINES

SEP = "<|file_sep|>"
EVENTS = (
    "import os\n\n\n"
    "class Handle:\n    def cancel(self):\n        self._cancelled = True\n\n\n"
    "def get_running_loop():\n    return _running_loop.loop\n\n\n"
    "def _set_running_loop(loop):\n    _running_loop.loop = loop\n"
)
UNRELATED = "".join(f"colour_{i} = mix(red_{i}, blue_{i})\n" for i in range(60))


def words(text: str) -> int:
    """A stand-in token counter: whitespace-separated words."""
    return len(text.split())


def current(lines: int, last: str = "loop = events.") -> str:
    return "from . import events\n" + "".join(f"value_{i} = compute({i})\n" for i in range(lines)) + last


def test_file_names_and_identifiers() -> None:
    assert file_name("file:///home/me/pkg/asyncio/events.py") == "asyncio/events.py"
    assert file_name("untitled:Untitled-1") == "Untitled-1"
    assert identifiers("def get(self, key): return self.cache[key] or None") == {"get", "key", "cache"}


def test_the_outline_of_a_module_the_code_imports_is_picked_and_an_unrelated_file_is_not() -> None:
    files = (OtherFile("file:///p/colours.py", UNRELATED), OtherFile("file:///p/events.py", EVENTS))
    chunks = pick_chunks(files, "from . import events\nloop = events.get_event_loop()\n", 200, words)
    assert [c.name for c in chunks] == ["p/events.py"]
    assert chunks[0].text == ("class Handle:\n" "def get_running_loop():\n" "def _set_running_loop(loop):\n")


def test_short_module_names_and_a_package_s_own_file_are_recognized() -> None:
    files = (OtherFile("file:///lib/re/__init__.py", "def compile(pattern, flags=0):\n    pass\n"),
             OtherFile("file:///lib/os.py", "def getcwd():\n    pass\n"))
    chunks = pick_chunks(files, "import re\nimport os\nvalue = os.getcwd(); rx = re.", 200, words)
    assert sorted(c.name for c in chunks) == ["lib/os.py", "re/__init__.py"]
    assert pick_chunks(files, "import json\nvalue = json.", 200, words) == []


def test_a_hyphenated_module_name_is_recognized() -> None:
    files = (OtherFile("file:///p/lib/buffer-util.js", "function mask(source, key) {\n  return source;\n}\n"),
             OtherFile("file:///p/lib/other.js", "function unrelated() {}\n"))
    chunks = pick_chunks(files, "const { toBuffer } = require('./buffer-util');\nconst x = ", 200, words)
    assert [c.name for c in chunks] == ["lib/buffer-util.js"]


def test_similar_windows_of_other_files_are_picked_best_last_within_the_budget() -> None:
    near = "".join(f"total_{i} = compute(value_{i}, scale)\n" for i in range(40))
    files = (OtherFile("file:///p/colours.py", UNRELATED), OtherFile("file:///p/sums.py", near))
    query = "".join(f"total_{i} = compute(value_{i}, scale)\n" for i in range(5, 9))
    chunks = pick_chunks(files, query, 10_000, words)
    assert chunks and all(c.name == "p/sums.py" for c in chunks) and len(chunks) <= MAX_CHUNKS
    assert [c.score for c in chunks] == sorted(c.score for c in chunks)  # the best one nearest the code
    starts = sorted(c.first_line for c in chunks)
    assert all(b - a >= CHUNK_LINES for a, b in zip(starts, starts[1:]))  # overlapping windows are not repeated
    budget = words(chunks[-1].text) + 8
    assert [c.text for c in pick_chunks(files, query, budget, words)] == [chunks[-1].text]
    assert pick_chunks(files, query, 3, words) == []


def test_text_already_in_the_prompt_binary_and_empty_queries_give_nothing() -> None:
    near = "".join(f"total_{i} = compute(value_{i}, scale)\n" for i in range(40))
    files = (OtherFile("file:///p/sums.py", near),)
    query = "total_5 = compute(value_5, scale)\n"
    assert pick_chunks(files, query, 10_000, words, exclude=near) == []
    assert pick_chunks((OtherFile("file:///p/blob.bin", near + "\x00"),), query, 10_000, words) == []
    assert pick_chunks(files, "  \n", 10_000, words) == []


def test_the_query_stays_the_same_while_the_cursor_stays_in_one_chunk() -> None:
    lines = current(100).splitlines(keepends=True)
    first = STATIC_CHUNK_LINES * 5
    queries = {query_lines(lines, line, STATIC_CHUNK_LINES) for line in range(first, first + STATIC_CHUNK_LINES)}
    assert len(queries) == 1
    assert queries.pop().startswith("from . import events\n")  # the imports above the query's lines
    assert query_lines(lines, first + STATIC_CHUNK_LINES, STATIC_CHUNK_LINES) != query_lines(lines, first, STATIC_CHUNK_LINES)


def test_render_puts_each_chunk_after_the_separator_and_the_current_file_last() -> None:
    chunks = pick_chunks((OtherFile("file:///p/events.py", EVENTS),), "events.get()", 200, words)
    rendered = render(chunks, SEP, "file:///p/tasks.py")
    assert rendered == f"{SEP}p/events.py\n{chunks[0].text}{SEP}p/tasks.py\n"
    assert render([], SEP, "file:///p/tasks.py") == ""


def test_the_context_puts_other_files_first_on_top_of_the_file_s_budget_and_keeps_them_while_typing() -> None:
    settings = replace(CompletionOptions(), context_tokens=600, max_new_tokens=40)
    text = current(400)
    many = "".join(f"def helper_{i}(loop):\n    return loop\n\n\n" for i in range(200))  # an outline over the share
    neighbourhood = Neighbourhood("file:///p/tasks.py", (OtherFile("file:///p/events.py", EVENTS + many),), SEP)
    alone = build_context(text, 401, 14, "python", settings, words)
    ctx = build_context(text, 401, 14, "python", settings, words, neighbourhood=neighbourhood)
    assert ctx.other_files.startswith(f"{SEP}p/events.py\nclass Handle:\n") and ctx.other_files.endswith(f"{SEP}p/tasks.py\n")
    assert (ctx.prefix, ctx.suffix) == (alone.prefix, alone.suffix)  # the file keeps its whole window
    assert ctx.other_files_tokens == words(ctx.other_files) <= settings.context_tokens // 3
    assert ctx.other_files_tokens > settings.context_tokens // 6  # the share is used, not a token more
    typed = build_context(text + "get", 401, 17, "python", settings, words, neighbourhood=neighbourhood)
    assert typed.other_files == ctx.other_files


def test_no_other_files_or_none_that_match_leave_the_context_as_it_was() -> None:
    settings = replace(CompletionOptions(), context_tokens=600, max_new_tokens=40)
    text = current(400)
    alone = build_context(text, 401, 14, "python", settings, words)
    for files in ((), (OtherFile("file:///p/colours.py", UNRELATED),)):
        ctx = build_context(text, 401, 14, "python", settings, words, neighbourhood=Neighbourhood("file:///p/t.py", files, SEP))
        assert ctx == alone
