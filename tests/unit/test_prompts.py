"""Prompt formats on the tiny tokenizer: stable (cacheable) part, left truncation, FIM, CodeT5+ modes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from inference.models.presets import FimTokens
from inference.models.prompt_formats import (
    LIVE_LINES,
    STATIC_CHUNK_LINES,
    codet5_clm_prompt,
    codet5_span_prompt,
    fim_prompt,
    plain_prompt,
    stable_boundary,
    summary_prompt,
)
from inference.engines.tokenizer import CodeTokenizer
from tests.tiny_models import CORPUS, TinyModels

FIM = FimTokens(prefix="<fim_prefix>", suffix="<fim_suffix>", middle="<fim_middle>")
BOS, EOS, UNK, SENTINEL = 3, 1, 2, 5


@pytest.fixture(scope="module")
def tok(tiny_models: TinyModels) -> CodeTokenizer:
    return CodeTokenizer(tiny_models.tokenizer_dir)


@pytest.fixture(scope="module")
def fim_tok(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> CodeTokenizer:
    """The tiny tokenizer plus the three FIM special tokens."""
    out = tmp_path_factory.mktemp("fim-tokenizer")
    for file in tiny_models.tokenizer_dir.iterdir():
        shutil.copy(file, out / file.name)
    raw = Tokenizer.from_file(str(out / "tokenizer.json"))
    raw.add_special_tokens([AddedToken(t, special=True) for t in (FIM.prefix, FIM.suffix, FIM.middle)])
    raw.save(str(out / "tokenizer.json"))
    return CodeTokenizer(out)


def numbered_lines(n: int, last: str = "x = ") -> str:
    """`n` complete lines then an unfinished last line (the cursor line)."""
    return "".join(f"value_{i} = {i}\n" for i in range(n)) + last


@pytest.mark.parametrize("n", [0, 5, STATIC_CHUNK_LINES + LIVE_LINES - 1])
def test_stable_boundary_zero_for_short_text(n: int) -> None:
    assert stable_boundary(numbered_lines(n)) == 0


def line_start(text: str, line: int) -> int:
    return sum(len(ln) for ln in text.splitlines(keepends=True)[:line])


def test_stable_boundary_snaps_to_chunks() -> None:
    for n in range(STATIC_CHUNK_LINES + LIVE_LINES, 80):
        text = numbered_lines(n)
        boundary = stable_boundary(text)
        chunks = (n - LIVE_LINES) // STATIC_CHUNK_LINES
        assert boundary == line_start(text, chunks * STATIC_CHUNK_LINES)
        assert text[boundary - 1] == "\n"
        assert text[boundary:].count("\n") >= LIVE_LINES  # the live lines stay out


def test_stable_boundary_changes_only_every_chunk() -> None:
    boundaries = [stable_boundary(numbered_lines(n)) for n in range(20, 70)]
    assert len(set(boundaries)) == 4  # 20..35, 36..51, 52..67, 68..69 complete lines
    changes = [n for n, (a, b) in enumerate(zip(boundaries, boundaries[1:]), start=21) if a != b]
    assert changes == [36, 52, 68]


def test_stable_boundary_fixed_while_typing_on_last_line() -> None:
    base = numbered_lines(30, last="")
    typed = [base + "result = compute(value_1, value_2"[:k] for k in range(35)]
    assert {stable_boundary(text) for text in typed} == {stable_boundary(base)} != {0}


def test_plain_prompt_bos_and_ids(tok: CodeTokenizer) -> None:
    prefix = "def add(a, b):\n    return"
    assert plain_prompt(tok, prefix, 100, None).ids == [BOS, *tok.encode(prefix)]  # as the template does
    assert plain_prompt(tok, prefix, 100, True).ids == [BOS, *tok.encode(prefix)]
    assert plain_prompt(tok, prefix, 100, False).ids == tok.encode(prefix)
    assert plain_prompt(tok, prefix, 100, None).static_len == 0  # short: nothing to cache


def test_plain_prompt_static_part(tok: CodeTokenizer) -> None:
    text = numbered_lines(40)
    prompt = plain_prompt(tok, text, 10_000, None)
    boundary = stable_boundary(text)
    static_text = tok.decode(prompt.ids[: prompt.static_len])
    assert prompt.static_len > 1
    # The static ids are the tokens that end at or before the boundary (the BOS included).
    assert text[:boundary].startswith(static_text) and len(static_text) >= boundary - 1
    assert not text[:boundary].startswith(tok.decode(prompt.ids[: prompt.static_len + 1]))


def test_plain_prompt_static_ids_identical_while_typing(tok: CodeTokenizer) -> None:
    base = CORPUS * 2 + "    def decrement(self):\n        "
    prompts = [plain_prompt(tok, base + "self.count -= 1"[:k], 10_000, None) for k in range(16)]
    static = {tuple(p.ids[: p.static_len]) for p in prompts}
    assert len(static) == 1 and len(next(iter(static))) > 10
    # A new line at the chunk's end moves the window forward.
    longer = plain_prompt(tok, CORPUS * 3 + "x", 10_000, None)
    assert longer.static_len > prompts[0].static_len


def test_plain_prompt_left_truncation(tok: CodeTokenizer) -> None:
    text = numbered_lines(40)
    ids = tok.encode(text)
    prompt = plain_prompt(tok, text, 50, None)
    assert prompt.ids == [BOS, *ids[-49:]]  # the end of the text, under the budget with BOS
    assert prompt.static_len == 0  # the window moved: nothing stable to cache
    assert plain_prompt(tok, text, 50, False).ids == ids[-50:]
    assert plain_prompt(tok, text, len(ids) + 1, None).ids == [BOS, *ids]


def test_fim_prompt_layout(fim_tok: CodeTokenizer) -> None:
    p, s, m = (fim_tok.token_id(t) for t in (FIM.prefix, FIM.suffix, FIM.middle))
    assert len({p, s, m}) == 3 and None not in {p, s, m}
    prefix, suffix = "def add(a, b):\n    return ", "\n\n\ndef greet(name):\n"
    prompt = fim_prompt(fim_tok, prefix, suffix, FIM, 200)
    assert prompt.ids == [p, *fim_tok.encode(prefix), s, *fim_tok.encode(suffix), m]
    assert prompt.static_len == 0


def test_fim_prompt_static_prefix_and_budget(fim_tok: CodeTokenizer) -> None:
    prefix, suffix = numbered_lines(40), "\n".join(f"after_{i}()" for i in range(100))
    p, s, m = (fim_tok.token_id(t) for t in (FIM.prefix, FIM.suffix, FIM.middle))
    big = fim_prompt(fim_tok, prefix, suffix, FIM, 100_000)
    plain = plain_prompt(fim_tok, prefix, 100_000, False)
    assert big.static_len == plain.static_len + 1  # the prefix token, then the stable part of the prefix
    assert big.ids[: big.static_len] == [p, *plain.ids[: plain.static_len]]

    budget = 200
    small = fim_prompt(fim_tok, prefix, suffix, FIM, budget)
    suffix_ids = fim_tok.encode(suffix)[: budget // 4]  # the start of the suffix, a quarter of the budget
    prefix_ids = fim_tok.encode(prefix)[-(budget - len(suffix_ids) - 3) :]  # the end of the prefix
    assert small.ids == [p, *prefix_ids, s, *suffix_ids, m]
    assert len(small.ids) == budget and small.static_len == 0


def test_fim_prompt_puts_other_files_before_its_tokens_and_caches_them(fim_tok: CodeTokenizer) -> None:
    p, s, m = (fim_tok.token_id(t) for t in (FIM.prefix, FIM.suffix, FIM.middle))
    before, prefix, suffix = "# maths.py\ndef add(a, b):\n# main.py\n", "total = ", "\nprint(total)\n"
    short = fim_prompt(fim_tok, prefix, suffix, FIM, 200, before)
    before_ids = fim_tok.encode(before)
    assert short.ids == [*before_ids, p, *fim_tok.encode(prefix), s, *fim_tok.encode(suffix), m]
    assert short.static_len == len(before_ids) + 1  # the other files and the prefix token stay while typing
    long = fim_prompt(fim_tok, numbered_lines(40), suffix, FIM, 100_000, before)
    alone = fim_prompt(fim_tok, numbered_lines(40), suffix, FIM, 100_000)
    assert long.static_len == len(before_ids) + alone.static_len


def test_fim_prompt_needs_fim_tokens(tok: CodeTokenizer) -> None:
    with pytest.raises(ValueError, match="lacks the FIM tokens"):
        fim_prompt(tok, "a", "b", FIM, 100)


def test_codet5_clm_prompt(tok: CodeTokenizer) -> None:
    prefix = "def add(a, b):\n    return"
    prompt = codet5_clm_prompt(tok, prefix, "<unk>", 100)
    assert prompt.source_ids == [BOS, UNK, EOS]  # the encoder sees only [CLM]
    assert prompt.prefix_ids == tok.encode(prefix)  # the decoder is forced through the code
    long = numbered_lines(40)
    assert codet5_clm_prompt(tok, long, "<unk>", 30).prefix_ids == tok.encode(long)[-30:]


def test_codet5_span_prompt(tok: CodeTokenizer) -> None:
    prefix, suffix = "def add(a, b):\n    return ", "\n\n\ndef greet(name):\n"
    prompt = codet5_span_prompt(tok, prefix, suffix, 100)
    assert prompt.source_ids == [BOS, *tok.encode(prefix), SENTINEL, *tok.encode(suffix), EOS]
    assert prompt.prefix_ids is None
    # Same as the tokenizer's own template around `prefix<extra_id_0>suffix`.
    assert prompt.source_ids == tok.encode_with_specials(f"{prefix}<extra_id_0>{suffix}")


def test_codet5_span_prompt_truncates_both_sides(tok: CodeTokenizer) -> None:
    prefix, suffix = numbered_lines(40), "".join(f"after_{i}()\n" for i in range(40))
    budget = 80
    prompt = codet5_span_prompt(tok, prefix, suffix, budget)
    prefix_ids = tok.encode(prefix)[-(budget * 3 // 4) :]  # the end of the prefix
    suffix_ids = tok.encode(suffix)[: budget - len(prefix_ids)]  # the start of the suffix
    assert prompt.source_ids == [BOS, *prefix_ids, SENTINEL, *suffix_ids, EOS]


def test_codet5_span_prompt_needs_sentinel(tmp_path: Path) -> None:
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"], show_progress=False)
    raw.train_from_iterator([CORPUS], trainer)
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", raw.token_to_id("<s>")), ("</s>", raw.token_to_id("</s>"))]
    )
    raw.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="no <extra_id_0> token"):
        codet5_span_prompt(CodeTokenizer(tmp_path), "a", "b", 100)


def test_summary_prompt(tok: CodeTokenizer) -> None:
    code = "def add(a, b):\n    return a + b"
    assert summary_prompt(tok, code, 512).source_ids == tok.encode_with_specials(code)
    truncated = summary_prompt(tok, CORPUS, 20).source_ids
    assert truncated == [BOS, *tok.encode(CORPUS)[:18], EOS]  # the start of the code, EOS kept
