"""Completion post-processing: golden cases per stage and for the whole pipeline, plus properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.completion.postprocess import chain
from inference.completion.postprocess.balance_brackets import balance_brackets
from inference.completion.postprocess.chain import postprocess
from inference.completion.postprocess.drop_blank import drop_blank
from inference.completion.postprocess.drop_repetition import drop_repetition
from inference.completion.postprocess.fix_indentation import fix_indentation
from inference.completion.postprocess.trim_suffix_overlap import trim_suffix_overlap
from inference.completion.request import CompletionRequestText
from inference.completion.stop import StopDetector

GOLDEN = Path(chain.__file__).parent / "golden"
STAGES = {
    "trim_suffix_overlap": trim_suffix_overlap,
    "balance_brackets": balance_brackets,
    "drop_repetition": drop_repetition,
    "fix_indentation": fix_indentation,
    "drop_blank": drop_blank,
    "postprocess": postprocess,
}


def _golden_cases() -> list:
    params = []
    for path in sorted(GOLDEN.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for case in data["cases"]:
            params.append(pytest.param(data["stage"], case, id=f"{path.stem}-{case['name']}"))
    return params


GOLDEN_CASES = _golden_cases()


def _kept_by_stop_rule(text: str, request: CompletionRequestText) -> str | None:
    """Feed `text` one character at a time, as a decoder would; the kept text, None if it never fired."""
    detector = StopDetector(request)
    for i in range(1, len(text) + 1):
        cut = detector.feed(text[:i])
        if cut is not None:
            return text[:cut]
    return None if detector.feed(text) is None else text


def test_golden_files_cover_every_stage() -> None:
    stages = {param.values[0] for param in GOLDEN_CASES}
    assert stages == {"stop", *STAGES}
    assert len(GOLDEN_CASES) >= 40
    for param in GOLDEN_CASES:
        case = param.values[1]
        assert case["why"].strip() and "\n" not in case["why"]
        assert set(case) == {"name", "why", "request", "input", "expected"}


@pytest.mark.parametrize(("stage", "case"), GOLDEN_CASES)
def test_golden(stage: str, case: dict) -> None:
    request = CompletionRequestText(**case["request"])
    if stage == "stop":
        assert _kept_by_stop_rule(case["input"], request) == case["expected"]
    else:
        assert STAGES[stage](case["input"], request) == case["expected"]


def test_stop_detector_restarts_on_unrelated_text() -> None:
    detector = StopDetector(CompletionRequestText(line_prefix="x = "))
    assert detector.feed("foo(1)\nbar") == 6
    assert detector.feed("ab") is None  # not an extension of what it saw: a new completion
    assert detector.feed("ab\n") == 2


# --------------------------------------------------------------------------------------------
# Properties on generated text made of the pieces code is made of.

PIECES = [
    "a", "x", "foo", "é", "漢", "🙂", " ", "  ", "    ", "\t", "\n", "\n    ", "\n\t", "\n\n",
    "(", ")", "[", "]", "{", "}", "'", '"', '"""', "`", "#", "//", "/*", "*/", "\\", ":", ";", ",",
    ".", "=", "+", "&'a", "def f():", "return x", "class A:", "function g() {", "@dec", "pub fn h",
]
code = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)
one_line = code.map(lambda s: s.replace("\n", ""))
indentation = st.sampled_from(["", "  ", "    ", "\t", "        "])


@st.composite
def requests(draw: st.DrawFn) -> CompletionRequestText:
    blank_prefix = draw(st.booleans())
    return CompletionRequestText(
        line_prefix=draw(indentation) + ("" if blank_prefix else draw(one_line)),
        line_suffix=draw(st.sampled_from(["", ")", '")', "]", "):", ";", "})", "x", " + 1"]) | one_line),
        prev_lines=draw(st.lists(one_line, max_size=3)),
        next_lines=draw(st.lists(one_line, max_size=3)),
        multiline=draw(st.booleans()),
        indent=draw(indentation),
    )


def _without_indentation(line: str) -> str:
    return line.lstrip(" \t")


@settings(max_examples=300, deadline=None)
@given(raw=code, request=requests())
def test_postprocess_output_is_the_models_text(raw: str, request: CompletionRequestText) -> None:
    out = postprocess(raw, request)
    if out is None:
        return
    assert out.strip() and not out.endswith("\n")
    if not request.multiline and not request.line_prefix.strip() and not request.line_suffix.strip() and raw.strip():
        # On an empty line, blank lines the model wrote before its code are dropped.
        raw = raw[raw.rfind("\n", 0, len(raw) - len(raw.lstrip())) + 1:]
    out_lines, raw_lines = out.split("\n"), raw.split("\n")
    assert len(out_lines) <= len(raw_lines)
    for i, line in enumerate(out_lines[:-1]):
        assert line == line.rstrip()
        assert _without_indentation(line) == _without_indentation(raw_lines[i]).rstrip()
    last = out_lines[-1]
    if not request.line_suffix.strip():
        assert last == last.rstrip()
    assert _without_indentation(raw_lines[len(out_lines) - 1]).startswith(_without_indentation(last))


@settings(max_examples=300, deadline=None)
@given(raw=code, request=requests())
def test_postprocess_is_idempotent(raw: str, request: CompletionRequestText) -> None:
    out = postprocess(raw, request)
    if out is not None:
        assert postprocess(out, request) == out


@settings(max_examples=300, deadline=None)
@given(raw=code, request=requests(), chunks=st.lists(st.integers(1, 6), min_size=1, max_size=40))
def test_stop_detector_consistent_on_growing_prefixes(
    raw: str, request: CompletionRequestText, chunks: list[int]
) -> None:
    detector = StopDetector(request)
    fired = None
    end = 0
    for size in chunks + [len(raw)]:
        end = min(len(raw), end + size)
        cut = detector.feed(raw[:end])
        fresh = StopDetector(request).feed(raw[:end])
        assert cut == fresh  # incremental state gives what a fresh look at the text gives
        if fired is not None:
            assert cut == fired  # once fired, the cut never moves
        elif cut is not None:
            assert 0 <= cut <= end
            fired = cut
    if fired is not None:
        assert StopDetector(request).feed(raw[:fired]) is None  # the kept text does not stop again
