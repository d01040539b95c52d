"""Token healing: where prompts are cut, how the re-created text is filtered, the constrained first token."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference.healing import HealingFilter, heal_prefix, pick_healing_token


@pytest.mark.parametrize(
    ("prefix", "kept", "cut"),
    [
        ("def add(a, b):\n    ret", "def add(a, b):", "\n    ret"),  # partial word and the newline + indent before it
        ("x = foo.ba", "x = foo.", "ba"),  # no whitespace before the partial word
        ("    return a + b_2", "    return a +", " b_2"),  # digits and underscores are word characters
        ("    return ", "    return", " "),  # trailing spaces
        ("if x:\n        ", "if x:", "\n        "),  # newline + indentation
        ("a = 1\n\n\n", "a = 1", "\n\n\n"),  # blank lines
        ("x = 1\t \r\n", "x = 1", "\t \r\n"),  # mixed whitespace, CRLF
        ("def add(a, b):", "def add(a, b):", ""),  # nothing to cut
        ("print(", "print(", ""),
        ("", "", ""),
        ("ret", "", "ret"),  # everything is cut
        ("   ", "", "   "),
        ("s = 'é'\n    ", "s = 'é'", "\n    "),  # non-ASCII text before the cut is kept as is
        ("x = 1\u00a0", "x = 1", "\u00a0"),  # Unicode whitespace is whitespace
    ],
)
def test_heal_prefix_cuts_at_last_clean_boundary(prefix: str, kept: str, cut: str) -> None:
    healed = heal_prefix(prefix)
    assert (healed.kept, healed.cut) == (kept, cut)


@pytest.mark.xfail(
    strict=True,
    reason="healing._PARTIAL_WORD is ASCII-only ([A-Za-z0-9_]), so a non-ASCII identifier is cut in its middle",
)
@pytest.mark.parametrize("prefix", ["x = naïve", "größe"])
def test_heal_prefix_cuts_whole_unicode_identifier(prefix: str) -> None:
    word = prefix.split()[-1]
    assert heal_prefix(prefix).kept == prefix[: len(prefix) - len(word)].rstrip()


@given(st.text(alphabet=st.sampled_from("ab_9 é\n\t(:.x"), max_size=30))
def test_heal_prefix_splits_without_loss(prefix: str) -> None:
    healed = heal_prefix(prefix)
    assert healed.kept + healed.cut == prefix
    assert not healed.kept[-1:].isspace()  # never ends in whitespace
    assert re.fullmatch(r"\s*[A-Za-z0-9_]*", healed.cut)  # only whitespace, then one partial word
    assert not healed.cut or not re.search(r"[A-Za-z0-9_]\Z", healed.kept) or healed.cut[0].isspace()


def feed_all(cut: str, pieces: list[str]) -> tuple[list[str], bool]:
    healing = HealingFilter(cut)
    return [healing.feed(piece) for piece in pieces], healing.diverged


@pytest.mark.parametrize(
    ("cut", "pieces", "out"),
    [
        ("\n    ret", ["\n   ", " return", " a", " + b"], ["", "urn", " a", " + b"]),
        ("\n    ret", ["\n    ret", "urn"], ["", "urn"]),  # a piece ends exactly at the cut
        (" ", [" a + b"], ["a + b"]),  # one piece re-creates the cut and goes past it
        ("ret", ["r", "e", "t", "", "urn"], ["", "", "", "", "urn"]),
    ],
)
def test_healing_filter_passes_on_only_text_after_the_cut(cut: str, pieces: list[str], out: list[str]) -> None:
    assert feed_all(cut, pieces) == (out, False)
    assert "".join(pieces).startswith(cut)
    assert cut + "".join(out) == "".join(pieces)


@pytest.mark.parametrize(
    ("cut", "pieces", "out"),
    [
        ("ret", ["x"], [""]),  # contradicts at once
        ("return", ["re", "x"], ["", ""]),  # contradicts after agreeing
        ("re", ["rxyz", "more"], ["", ""]),  # a piece longer than the cut that contradicts it
        ("\n    ", ["\n  ", "x", "    "], ["", "", ""]),  # nothing passes once diverged
    ],
)
def test_healing_filter_reports_divergence(cut: str, pieces: list[str], out: list[str]) -> None:
    assert feed_all(cut, pieces) == (out, True)


TEXTS = ["a", " ret", "\n   ", "\n    return", "xyz", "\ufffd", "", " return", "\n"]


def logits_ranking(*ranking: int) -> np.ndarray:
    """Logits over TEXTS where `ranking` lists ids from most to least likely."""
    logits = np.full(len(TEXTS), -10.0, dtype=np.float32)
    for rank, token_id in enumerate(ranking):
        logits[token_id] = 5.0 - rank
    return logits


def test_pick_healing_token_takes_most_likely_agreeing_token() -> None:
    # "xyz" disagrees, U+FFFD (a partial character) and "" never qualify; "\n    return" starts with the cut.
    assert pick_healing_token(logits_ranking(4, 5, 6, 3, 2), "\n    re", TEXTS) == 3
    # A token that is a prefix of the cut qualifies too.
    assert pick_healing_token(logits_ranking(4, 2, 3), "\n    re", TEXTS) == 2
    assert pick_healing_token(logits_ranking(8, 2), "\n    re", TEXTS) == 8


def test_pick_healing_token_none_when_nothing_agrees_in_top_k() -> None:
    logits = logits_ranking(4, 0, 1, 3)
    assert pick_healing_token(logits, "\n", TEXTS, top_k=3) is None
    assert pick_healing_token(logits, "\n", TEXTS, top_k=4) == 3
    assert pick_healing_token(logits_ranking(0, 4), "q", TEXTS) is None


def test_pick_healing_token_ignores_ids_without_text() -> None:
    # Converted models may have more logits than tokenizer entries (padded vocabularies).
    logits = np.concatenate([logits_ranking(1), np.array([50.0], dtype=np.float32)])
    assert pick_healing_token(logits, " re", TEXTS) == 1
