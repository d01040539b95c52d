"""CodeTokenizer (tokenizers only, exact text) and IncrementalDecoder, on the tiny byte-level BPE tokenizer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer, processors

from inference.engines.tokenizer import CodeTokenizer, IncrementalDecoder, TokenizerError
from tests.tiny_models import CORPUS, TinyModels

ODD_TEXTS = [CORPUS, "\tx = 'é ü ✓'  \r\n\n        y ;,. ?\n", "   leading and trailing   ", "日本語 = 1", ""]


@pytest.fixture(scope="module")
def tok(tiny_models: TinyModels) -> CodeTokenizer:
    return CodeTokenizer(tiny_models.tokenizer_dir)


def copy_tokenizer(src: Path, dest: Path) -> Path:
    dest.mkdir()
    for file in src.iterdir():
        shutil.copy(file, dest / file.name)
    return dest


def test_missing_tokenizer_json(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="has no tokenizer.json"):
        CodeTokenizer(tmp_path)


def test_unreadable_tokenizer_json(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match="cannot read"):
        CodeTokenizer(tmp_path)


def test_special_tokens_from_config(tok: CodeTokenizer) -> None:
    assert (tok.bos_token, tok.eos_token, tok.unk_token) == ("<s>", "</s>", "<unk>")
    assert [tok.token_id(t) for t in ("<pad>", "</s>", "<unk>", "<s>", "<extra_id_0>")] == [0, 1, 2, 3, 5]
    assert tok.token_id("no such token") is None


def test_template_adds_bos(tok: CodeTokenizer, tiny_models: TinyModels, tmp_path: Path) -> None:
    assert tok.template_adds_bos
    plain = copy_tokenizer(tiny_models.tokenizer_dir, tmp_path / "plain")
    raw = Tokenizer.from_file(str(plain / "tokenizer.json"))
    raw.post_processor = processors.ByteLevel(trim_offsets=False)
    raw.save(str(plain / "tokenizer.json"))
    assert not CodeTokenizer(plain).template_adds_bos


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_encode_decode_round_trip(tok: CodeTokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.encode_with_specials(text) == [3, *ids, 1]
    assert tok.ids(tok.tokens(ids)) == ids


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_offsets_cover_the_text(tok: CodeTokenizer, text: str) -> None:
    ids, offsets = tok.encode_with_offsets(text)
    assert ids == tok.encode(text)
    assert [start for start, _ in offsets] == sorted(start for start, _ in offsets)
    if text:
        assert offsets[0][0] == 0 and offsets[-1][1] == len(text)
    # Tokens that end before a character offset decode to exactly the text before it.
    cut = len(text) // 2
    whole = [i for i, (_, end) in zip(ids, offsets) if end <= cut]
    assert text[:cut].startswith(tok.decode(whole))


def test_unknown_tokens_map_to_unk(tok: CodeTokenizer) -> None:
    assert tok.ids(["Ġreturn", "not-a-token"]) == [tok.token_id("Ġreturn"), 2]


def test_token_texts(tok: CodeTokenizer) -> None:
    texts = tok.token_texts
    assert len(texts) == len(tok.tokens(list(range(len(texts))))) >= 1000
    assert texts[tok.token_id("Ġreturn")] == " return"
    assert texts[tok.token_id("ĊĠĠĠ")] == "\n   "
    assert texts[:15] == [""] * 15  # special tokens have no text
    assert [texts[i] for i in tok.encode("é")] == ["\ufffd", "\ufffd"]  # one byte each


def push_all(decoder: IncrementalDecoder, ids: list[int]) -> list[str]:
    return [decoder.push(i) for i in ids]


@pytest.mark.parametrize("text", ["x = 'é ü ✓'", "日本語", "naïve\n\t✓✓", " a + b\n\n\ndef"])
@pytest.mark.parametrize("context", ["", "def f():\n    return", "s = 'ü", "日本語"])
def test_incremental_decoder_exact_text(tok: CodeTokenizer, text: str, context: str) -> None:
    ids = tok.encode(text)
    decoder = IncrementalDecoder(tok, tok.encode(context))
    pieces = push_all(decoder, ids)
    assert "".join(pieces) == text == decoder.text
    assert not any("\ufffd" in piece for piece in pieces)


def test_incremental_decoder_waits_for_whole_character(tok: CodeTokenizer) -> None:
    ids = tok.encode("✓")
    assert len(ids) == 3  # three byte tokens
    assert push_all(IncrementalDecoder(tok, []), ids) == ["", "", "✓"]


def test_incremental_decoder_keeps_leading_space_after_context(tok: CodeTokenizer) -> None:
    decoder = IncrementalDecoder(tok, tok.encode("def add(a, b):\n    return"))
    assert push_all(decoder, tok.encode(" a + b")) == [" a", " +", " b"]
