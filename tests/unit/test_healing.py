"""Token healing: where prompts are cut, how the re-created text is filtered, the constrained first token."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference.completion.healing import HealedPrefix, heal_prefix, limit_cut
from inference.engines.healed_generation import HealingFilter, accepts_first_token, pick_healing_token, top_k
from inference.engines.tokenizer import CodeTokenizer


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


@pytest.mark.parametrize("prefix", ["x = naïve", "größe", "名前 = 値"])
def test_heal_prefix_cuts_whole_unicode_identifier(prefix: str) -> None:
    word = prefix.split()[-1]
    assert heal_prefix(prefix).kept == prefix[: len(prefix) - len(word)].rstrip()


@given(st.text(alphabet=st.sampled_from("ab_9 é\n\t(:.x"), max_size=30))
def test_heal_prefix_splits_without_loss(prefix: str) -> None:
    healed = heal_prefix(prefix)
    assert healed.kept + healed.cut == prefix
    assert not healed.kept[-1:].isspace()  # never ends in whitespace
    assert re.fullmatch(r"\s*\w*", healed.cut)  # only whitespace, then one partial word
    assert not healed.cut or not re.search(r"\w\Z", healed.kept) or healed.cut[0].isspace()


def test_limit_cut_keeps_only_the_last_token_of_a_long_cut(tiny_models) -> None:
    tok = CodeTokenizer(tiny_models.tokenizer_dir)
    offsets = lambda text: tok.encode_with_offsets(text)[1]  # noqa: E731
    prefix = "def add(a, b):\n    total_of_everything_here"
    healed = heal_prefix(prefix)
    spans = offsets(prefix)
    assert len([s for s in spans if s[1] > len(healed.kept)]) > 2  # a word of several tokens
    limited = limit_cut(healed, offsets)
    last_start = spans[-1][0]
    assert limited == HealedPrefix(kept=prefix[:last_start], cut=prefix[last_start:])
    word_start = next(a for a, b in spans if b > len(healed.kept) and prefix[a:b].strip())
    assert limit_cut(healed, offsets, max_word_tokens=99) == HealedPrefix(prefix[:word_start], prefix[word_start:])


@pytest.mark.parametrize("prefix", ["x = 1\n", "", "    return a", "x = 1\n    "])
def test_limit_cut_leaves_short_cuts_alone(tiny_models, prefix: str) -> None:
    tok = CodeTokenizer(tiny_models.tokenizer_dir)
    healed = heal_prefix(prefix)
    assert limit_cut(healed, lambda text: tok.encode_with_offsets(text)[1]) == healed


@pytest.mark.parametrize("prefix", ["def add(a, b):\n    retu", "def add(a, b):\n    return", "x = [\n    item"])
def test_limit_cut_keeps_whitespace_tokens_before_the_word(tiny_models, prefix: str) -> None:
    """Whitespace the tokenizer splits off as tokens of its own stays in the prompt; the cut starts
    at the first token holding the word, so the first generated token can write it."""
    tok = CodeTokenizer(tiny_models.tokenizer_dir)
    offsets = lambda text: tok.encode_with_offsets(text)[1]  # noqa: E731
    healed = heal_prefix(prefix)
    limited = limit_cut(healed, offsets)
    word_start = next(a for a, b in offsets(prefix) if b > len(healed.kept) and prefix[a:b].strip())
    assert limited == HealedPrefix(kept=prefix[:word_start], cut=prefix[word_start:])
    assert limited.cut.strip() == healed.cut.strip() and len(limited.cut) < len(healed.cut)


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


def test_top_k_ranks_largest_first() -> None:
    logits = np.array([0.5, 3.0, -1.0, 2.0, 3.5], dtype=np.float32)
    assert top_k(logits, 3) == [4, 1, 3]
    assert top_k(logits, 10) == [4, 1, 3, 0, 2]  # k larger than the vocabulary
    assert top_k(logits, 1) == [4]


def test_pick_healing_token_takes_first_agreeing_candidate() -> None:
    # "xyz" disagrees, U+FFFD (a partial character) and "" never qualify; "\n    return" starts with the cut.
    assert pick_healing_token([4, 5, 6, 3, 2], "\n    re", TEXTS) == 3
    # A cut ending in whitespace: the first token that agrees, a prefix of the cut too ("\n   " then " return").
    assert pick_healing_token([4, 2, 3], "\n    ", TEXTS) == 2
    assert pick_healing_token([8, 2], "\n    ", TEXTS) == 8


def test_pick_healing_token_prefers_writing_a_cut_word_whole() -> None:
    # "\n   " is more likely but would leave "re" to free generation; "\n    return" writes it all.
    assert pick_healing_token([4, 2, 3], "\n    re", TEXTS) == 3
    assert pick_healing_token([1, 7], " retu", TEXTS) == 7
    # No candidate writes it all: the first that starts it.
    assert pick_healing_token([4, 2, 8], "\n    re", TEXTS) == 2


def test_model_s_own_first_token_is_kept_when_it_writes_the_cut_as_needed() -> None:
    assert accepts_first_token(2, "\n    ", TEXTS)  # whitespace: a start of it is natural
    assert not accepts_first_token(2, "\n    re", TEXTS)  # a word: must be written whole
    assert accepts_first_token(3, "\n    re", TEXTS)
    assert not accepts_first_token(4, "\n    ", TEXTS)


def test_pick_healing_token_none_when_no_candidate_agrees() -> None:
    assert pick_healing_token([4, 0, 1], "\n", TEXTS) is None
    assert pick_healing_token([0, 4], "q", TEXTS) is None
    assert pick_healing_token([], "q", TEXTS) is None


def test_pick_healing_token_ignores_ids_without_text() -> None:
    # Converted models may have more logits than tokenizer entries (padded vocabularies).
    assert pick_healing_token([len(TEXTS), -1, 1], " re", TEXTS) == 1


def test_pick_healing_token_from_logits() -> None:
    logits = np.full(len(TEXTS), -10.0, dtype=np.float32)
    logits[[4, 0, 1, 3]] = [5.0, 4.0, 3.0, 2.0]
    assert pick_healing_token(top_k(logits, 3), "\n", TEXTS) is None  # the agreeing token ranks 4th
    assert pick_healing_token(top_k(logits, 4), "\n", TEXTS) == 3


# -- the start of a file: healing backs the prompt off to nothing ----------------------------------
START_OF_FILE = "import os\n\n\ndef add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def start_models(tiny_models):
    """Every completion path of the tiny models: left to right with and without BOS (Qwen and
    SmolLM2 prompts have none), CodeT5+ decoder-only mode and span infilling."""
    import dataclasses

    from inference import CodeModel

    llama, codegen, t5 = (CodeModel(str(path), cpu_threads=1) for path in
                          (tiny_models.llama_int8, tiny_models.codegen_int8, tiny_models.t5_int8))
    no_bos = CodeModel(str(tiny_models.llama_int8), cpu_threads=1)
    no_bos.preset = dataclasses.replace(no_bos.preset, add_bos=False)
    codegen_no_bos = CodeModel(str(tiny_models.codegen_int8), cpu_threads=1)
    codegen_no_bos.preset = dataclasses.replace(codegen_no_bos.preset, add_bos=False)
    return {"llama": llama, "llama without BOS": no_bos, "codegen": codegen, "codegen without BOS": codegen_no_bos, "t5": t5}


@pytest.mark.parametrize("name", ["llama", "llama without BOS", "codegen", "codegen without BOS", "t5"])
@pytest.mark.parametrize("cursor", [0, 1, 3, 6, 7, 10])
@pytest.mark.parametrize("with_suffix", [False, True])  # T5 infills when there is text after the cursor
def test_completing_at_the_start_of_a_file_works_for_every_prompt_format(start_models, name, cursor, with_suffix):
    """`import` at (0, 6) backs off to an empty prompt: the engine got no tokens and raised
    "cannot create std::vector larger than max_size()". Now the prompt starts as documents do."""
    model = start_models[name]
    suffix = START_OF_FILE[cursor:] if with_suffix else ""
    stream = model.complete(START_OF_FILE[:cursor], suffix, max_new_tokens=6)
    with stream:
        pieces = list(stream)
    assert "".join(pieces) == stream.text


def test_an_empty_prompt_without_bos_starts_from_the_end_of_document_token(start_models):
    """With nothing before the cursor and no BOS, the model still writes the start of a file."""
    stream = start_models["llama without BOS"].complete("", max_new_tokens=6)
    with stream:
        list(stream)
    assert stream.text.startswith("def add")


@pytest.mark.parametrize("prefix", ["x = foo.", "print(", "def add(a, b):", "y = [1, 2,"])
def test_limit_cut_cuts_a_last_token_of_punctuation(tiny_models, prefix: str) -> None:
    """A prompt ending in a mark backs off its last token when that token is punctuation alone, so
    a tokenizer that joins marks to the next word (Qwen2: `.walk`) sees a clean boundary."""
    tok = CodeTokenizer(tiny_models.tokenizer_dir)
    offsets = lambda text: tok.encode_with_offsets(text)[1]  # noqa: E731
    healed = heal_prefix(prefix)
    assert healed.cut == ""  # nothing for the string rules
    last_start = offsets(prefix)[-1][0]
    limited = limit_cut(healed, offsets)
    assert limited == HealedPrefix(kept=prefix[:last_start], cut=prefix[last_start:])
    assert limited.cut and not re.search(r"[\w\s]", limited.cut)


@pytest.mark.parametrize("prefix", ["x = foo", "x = 1\n", "", "x = f(a)  "])
def test_limit_cut_leaves_prompts_that_end_in_a_word_or_space(tiny_models, prefix: str) -> None:
    tok = CodeTokenizer(tiny_models.tokenizer_dir)
    healed = heal_prefix(prefix)
    limited = limit_cut(healed, lambda text: tok.encode_with_offsets(text)[1])
    assert not re.search(r"[^\w\s]", limited.cut)
