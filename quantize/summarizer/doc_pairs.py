"""(function without its doc comment -> first sentence of the doc comment) pairs from JavaScript,
TypeScript, Java, Go and Rust source, found with the server's own tree-sitter analysis.

The code of a pair is what a hover hands the summarizer (`code_to_summarize`); the summary is the
doc comment's first sentence (tags such as `@param` end it), with inline markup reduced to its
text: `{@link Foo#bar}` -> `Foo#bar`, `[`Vec`]` and `[text](url)` -> `Vec`, `text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from inference.summary.summaries import code_to_summarize
from inference.syntax import functions_in
from quantize.summarizer.extract import MAX_CODE_CHARS, Pair, first_sentence, is_usable_summary

LANGUAGE_SUFFIXES = {
    "javascript": (".js", ".mjs", ".cjs", ".jsx"),
    "typescript": (".ts", ".mts", ".cts"),
    "tsx": (".tsx",),
    "java": (".java",),
    "go": (".go",),
    "rust": (".rs",),
}
_INLINE_TAG = re.compile(r"\{@(?:link|linkplain|code|literal|value)\s+([^}]*)\}")
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\[[^\]]*\])?")
_GENERATED_FILE = re.compile(r"Code generated .* DO NOT EDIT|@generated|auto-?generated", re.IGNORECASE)
_MIN_BODY_LINES = 2


def language_of(path: str) -> str | None:
    """The tree-sitter language of a source path by its suffix (`.d.ts` declarations and minified files: None)."""
    if path.endswith((".d.ts", ".min.js")):
        return None
    return next((language for language, suffixes in LANGUAGE_SUFFIXES.items() if path.endswith(suffixes)), None)


def summary_of(doc: str) -> str:
    """The first sentence of a doc comment's text, markup reduced to its words."""
    return first_sentence(_MARKDOWN_LINK.sub(r"\1", _INLINE_TAG.sub(r"\1", doc)))


def pairs_from_file(text: str, language: str, module: str) -> Iterator[Pair]:
    """Usable pairs of one file: functions and methods with a doc comment and a body of at least two lines."""
    if _GENERATED_FILE.search(text[:2000]):
        return
    for info in functions_in(text, language, tests=False):
        if not info.docstring or not info.name:
            continue
        summary = summary_of(info.docstring)
        code = code_to_summarize(info)
        if not is_usable_summary(summary) or len(code) > MAX_CODE_CHARS or code.count("\n") < _MIN_BODY_LINES:
            continue
        yield Pair(code=code, summary=summary, name=info.name, module=module, language=language_family(language))


def language_family(language: str) -> str:
    """The language a pair or function is reported under (TSX counts as TypeScript)."""
    return "typescript" if language == "tsx" else language
