from dataclasses import replace

from inference.completion.context import build_context
from inference.completion.options import CompletionOptions
from inference.models.prompt_formats import STATIC_CHUNK_LINES


def words(text: str) -> int:
    """A stand-in token counter: whitespace-separated words."""
    return len(text.split())


SOURCE = "import os\nimport sys\n\n\nclass Box:\n    def size(self):\n        return 1\n\n    def grow(self, n):\n"


def test_small_file_prefix_is_everything_before_the_cursor_and_suffix_after():
    text = "def f(x):\n    return x\n\nprint(f(2))\n"
    ctx = build_context(text, 1, 10, "python", CompletionOptions(), words)
    assert ctx.prefix == "def f(x):\n    return"
    assert ctx.suffix == " x\n\nprint(f(2))\n"
    assert ctx.request.line_prefix == "    return" and ctx.request.line_suffix == " x"
    assert ctx.request.next_lines == ["", "print(f(2))"]


def test_block_mode_after_an_empty_block_header_and_line_mode_elsewhere():
    text = SOURCE + "        \n"
    block = build_context(text, 9, 8, "python", CompletionOptions(), words)
    assert block.request.multiline and block.request.indent == "        "
    assert block.max_new_tokens > CompletionOptions().max_new_tokens
    line = build_context(text, 6, 16, "python", CompletionOptions(), words)
    assert not line.request.multiline
    forced = build_context(text, 9, 8, "python", replace(CompletionOptions(), mode="line"), words)
    assert not forced.request.multiline


def test_window_starts_on_a_chunk_boundary_and_stays_put_while_typing():
    body = "".join(f"value_{i} = compute({i}, {i + 1})\n" for i in range(400))
    settings = replace(CompletionOptions(), context_tokens=600, max_new_tokens=40)
    text = body + "result = "
    first = build_context(text, 400, 9, "python", settings, words)
    typed = build_context(text + "comp", 400, 13, "python", settings, words)
    start_line = first.prefix.split("\n", 1)[0]
    assert start_line.startswith("value_") and int(start_line.split("_")[1].split(" ")[0]) % STATIC_CHUNK_LINES == 0
    assert typed.prefix.startswith(first.prefix[: first.prefix.rindex("\n")])
    assert words(first.prefix) + words(first.suffix) <= settings.context_tokens - settings.max_new_tokens


def test_imports_and_enclosing_signature_are_kept_when_the_window_drops_them():
    filler = "".join(f"        x{i} = {i}\n" for i in range(300))
    text = "import os\n\n\nclass Box:\n    def grow(self, n):\n" + filler + "        return os."
    settings = replace(CompletionOptions(), context_tokens=400, max_new_tokens=40)
    ctx = build_context(text, 305, 18, "python", settings, words)
    assert ctx.prefix.startswith("import os\nclass Box:\n    def grow(self, n):\n")
    assert ctx.prefix.endswith("        return os.")


def test_character_past_the_end_and_unknown_language_are_handled():
    text = "abc\n"
    ctx = build_context(text, 0, 99, None, CompletionOptions(), words)
    assert ctx.prefix == "abc" and ctx.suffix == "\n"
    end = build_context(text, 1, 0, "python", CompletionOptions(), words)
    assert end.prefix == "abc\n" and end.suffix == ""


def test_one_enormous_line_is_cut_to_the_budget():
    text = "x = [" + ", ".join(str(i) for i in range(20000))
    settings = replace(CompletionOptions(), context_tokens=300, max_new_tokens=40)
    ctx = build_context(text, 0, len(text), "python", settings, words)
    assert text.endswith(ctx.prefix) and len(ctx.prefix) < len(text)
