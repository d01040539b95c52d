"""Tokenizer of a model directory, loaded with `tokenizers` alone (fast start, no transformers)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from tokenizers import Tokenizer


class TokenizerError(RuntimeError):
    """The model directory has no usable tokenizer."""


def _special(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class CodeTokenizer:
    """Encodes text to model tokens and decodes ids back, exactly (no cleanup, no stripping)."""

    def __init__(self, model_dir: Path) -> None:
        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise TokenizerError(f"{model_dir} has no tokenizer.json; convert the model with codet5-quantize")
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # the tokenizers library raises plain Exception subclasses
            raise TokenizerError(f"cannot read {path}: {exc}") from exc
        config: dict = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            file = Path(model_dir) / name
            if file.is_file():
                config.update(json.loads(file.read_text(encoding="utf-8")))
        self.bos_token = _special(config.get("bos_token"))
        self.eos_token = _special(config.get("eos_token"))
        self.unk_token = _special(config.get("unk_token"))

    @functools.cached_property
    def template_adds_bos(self) -> bool:
        """Whether the tokenizer's own template starts every sequence with its BOS token."""
        bos = self.token_id(self.bos_token) if self.bos_token else None
        ids = self.encode_with_specials("a")
        return bos is not None and bool(ids) and ids[0] == bos

    def encode(self, text: str) -> list[int]:
        """Ids of `text` without any added special tokens."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_literal(self, text: str) -> list[int]:
        """Ids of `text` without added special tokens, reading special-token strings in it (a
        `<|im_end|>` in a user's code) as plain text: for untrusted text inside a prompt template."""
        return self._literal.encode(text, add_special_tokens=False).ids

    @functools.cached_property
    def _literal(self) -> Tokenizer:
        literal = Tokenizer.from_str(self._tok.to_str())
        literal.encode_special_tokens = True
        return literal

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids of `text` (no special tokens) and each token's (start, end) character offsets."""
        encoding = self._tok.encode(text, add_special_tokens=False)
        return encoding.ids, encoding.offsets

    def encode_with_specials(self, text: str) -> list[int]:
        """Ids of `text` with the tokenizer's own template (BOS/EOS) applied."""
        return self._tok.encode(text, add_special_tokens=True).ids

    def tokens(self, ids: list[int]) -> list[str]:
        """Token strings of `ids`, as CTranslate2 expects them."""
        return [self._tok.id_to_token(i) for i in ids]

    def ids(self, tokens: list[str]) -> list[int]:
        """Ids of token strings (unknown tokens map to the unk id, or 0)."""
        unk = self._tok.token_to_id(self.unk_token) if self.unk_token else None
        out = []
        for token in tokens:
            token_id = self._tok.token_to_id(token)
            out.append(token_id if token_id is not None else (unk or 0))
        return out

    def token_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    @functools.cached_property
    def token_texts(self) -> list[str]:
        """Text of every token on its own, indexed by id."""
        return [self._tok.decode([i], skip_special_tokens=True) for i in range(self._tok.get_vocab_size())]

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens dropped."""
        return self._tok.decode(ids, skip_special_tokens=True)


class IncrementalDecoder:
    """Turns a growing list of generated ids into text pieces.

    Decodes with a few context ids in front so that tokenizers which drop a leading space
    (SentencePiece) or split a character over several byte tokens still give exact text.
    """

    def __init__(self, tokenizer: CodeTokenizer, context_ids: list[int]) -> None:
        self._tok = tokenizer
        self._context = list(context_ids[-4:])
        self._context_text = tokenizer.decode(self._context)
        self._ids: list[int] = []
        self.text = ""

    def push(self, token_id: int) -> str:
        """Add one id; return the new text it completes ('' while a character is incomplete)."""
        self._ids.append(token_id)
        full = self._tok.decode(self._context + self._ids)
        if full.endswith("\ufffd"):
            return ""
        text = full[len(self._context_text):] if full.startswith(self._context_text) else self._tok.decode(self._ids)
        piece = text[len(self.text):] if text.startswith(self.text) else ""
        self.text = text
        return piece
