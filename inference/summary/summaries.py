"""One-sentence summaries of functions: the code the model reads, the sentence kept of what it writes."""

from __future__ import annotations

import re
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engines.stream import JobStopped
from ..syntax import FunctionInfo

if TYPE_CHECKING:
    from ..engines.completion_model import CompletionModel

SUMMARY_MAX_TOKENS = 64
MAX_CODE_CHARS = 8_000  # the model reads the start of a longer function (its encoder keeps ~512 tokens)
_SENTENCE_END = re.compile(r"[.!?](?=\s)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_WORD = re.compile(r"\w")

TextListener = Callable[[str], None]


def first_sentence(text: str) -> tuple[str, bool]:
    """(the first sentence of `text` on one line, whether it is complete: followed by whitespace)."""
    end = _SENTENCE_END.search(text)
    head = text[: end.end()] if end else text
    return " ".join(head.split()), end is not None


def code_to_summarize(info: FunctionInfo) -> str:
    """The function's text as the summarizer is trained on it: dedented, without a Python
    docstring; a huge one (or a minified one-liner) cut to its first MAX_CODE_CHARS characters,
    at a line break when one is near, so that the signature and the start of the body stay."""
    lines = _LINE_BREAK.split(info.text)
    if info.style == "python" and info.docstring_range is not None:
        start_line, start_char, end_line, end_char = info.docstring_range
        first, last = start_line - info.start_line, end_line - info.start_line
        if 0 < first <= last < len(lines) and not lines[first][:start_char].strip() and not lines[last][end_char:].strip():
            del lines[first : last + 1]
    code = textwrap.dedent("\n".join(lines))
    if len(code) <= MAX_CODE_CHARS:
        return code
    cut = code.rfind("\n", 0, MAX_CODE_CHARS + 1)
    return code[: cut if cut > MAX_CODE_CHARS // 2 else MAX_CODE_CHARS].rstrip()


def has_words(summary: str) -> bool:
    """Whether a summary says anything (a lone "." or "()" does not)."""
    return _WORD.search(summary) is not None


@dataclass(frozen=True)
class Summary:
    """A generated summary ("" if the model wrote none) and the name of the model that wrote it."""

    text: str
    model: str


class SummaryRun:
    """One summary generation as jobs. A job yields (returns None) when `yield_now()` says more
    urgent work waits; the next job generates again from the start, greedy decoding repeats
    itself, and listeners hear only text beyond what they were already given."""

    def __init__(self, code: str, yield_now: Callable[[], bool], on_text: TextListener | None) -> None:
        self.code = code
        self.yield_now = yield_now
        self.on_text = on_text
        self.shown = ""

    def __call__(self, model: CompletionModel, stop: threading.Event) -> str | None:
        stream = model.summarize(self.code, max_new_tokens=SUMMARY_MAX_TOKENS)
        with stream:
            for _ in stream:
                if stop.is_set():
                    raise JobStopped()
                sentence, complete = first_sentence(stream.text)
                if complete:
                    return sentence
                self._tell(sentence)
                if self.yield_now():
                    return None
        return first_sentence(stream.text)[0]

    def _tell(self, sentence: str) -> None:
        if self.on_text is not None and has_words(sentence) and not self.shown.startswith(sentence):
            self.shown = sentence
            self.on_text(sentence)
