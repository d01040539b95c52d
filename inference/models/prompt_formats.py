"""Prompt formats: the text around the cursor becomes model input ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .presets import FimTokens

if TYPE_CHECKING:
    from ..engines.tokenizer import CodeTokenizer

SPAN_SENTINEL = "<extra_id_0>"
SPAN_END = "<extra_id_1>"
STATIC_CHUNK_LINES = 16  # the cached part of a prompt grows in steps of this many lines
LIVE_LINES = 4  # lines before the cursor that always stay out of the cached part


@dataclass(frozen=True)
class DecoderPrompt:
    """Input of a decoder-only model; the first `static_len` ids rarely change while typing."""

    ids: list[int]
    static_len: int


@dataclass(frozen=True)
class EncoderDecoderPrompt:
    """Input of an encoder-decoder model; `prefix_ids` is forced at the start of the decoder."""

    source_ids: list[int]
    prefix_ids: list[int] | None = None


def stable_boundary(text: str) -> int:
    """Character offset up to which `text` is treated as stable: a line start that moves only
    every STATIC_CHUNK_LINES lines, at least LIVE_LINES lines before the end."""
    line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    usable = len(line_starts) - 1 - LIVE_LINES
    if usable < STATIC_CHUNK_LINES:
        return 0
    return line_starts[(usable // STATIC_CHUNK_LINES) * STATIC_CHUNK_LINES]


def _encode_left_truncated(tok: CodeTokenizer, text: str, budget: int) -> tuple[list[int], int]:
    """Ids of `text` keeping at most `budget` tokens from its end, and the static length in them."""
    ids, offsets = tok.encode_with_offsets(text)
    boundary = stable_boundary(text)
    static = sum(1 for _, end in offsets if end <= boundary) if boundary else 0
    if len(ids) > budget:
        drop = len(ids) - budget
        ids = ids[drop:]
        static = 0  # the window moved: nothing stable left to cache
    return ids, static


def plain_prompt(tok: CodeTokenizer, prefix: str, budget: int, add_bos: bool | None) -> DecoderPrompt:
    """Left-to-right: the prefix is the prompt, after BOS if `add_bos` (None: as the tokenizer's template does)."""
    if add_bos is None:
        add_bos = tok.template_adds_bos
    bos_id = tok.token_id(tok.bos_token) if tok.bos_token else None
    bos = [bos_id] if add_bos and bos_id is not None else []
    ids, static = _encode_left_truncated(tok, prefix, budget - len(bos))
    return DecoderPrompt(ids=bos + ids, static_len=static + len(bos) if static else 0)


def fim_prompt(tok: CodeTokenizer, prefix: str, suffix: str, fim: FimTokens, budget: int,
               before: str = "") -> DecoderPrompt:
    """Prefix-suffix-middle order: the stable prefix comes first and can be cached; `before`
    (other files) precedes the FIM tokens, as in repository-level training, and is cached with it."""
    specials = [tok.token_id(t) for t in (fim.prefix, fim.suffix, fim.middle)]
    if any(s is None for s in specials):
        raise ValueError(f"the tokenizer lacks the FIM tokens {fim}")
    before_ids = tok.encode(before) if before else []
    suffix_ids = tok.encode(suffix)[: max(0, budget // 4)]
    prefix_ids, static = _encode_left_truncated(tok, prefix, budget - len(suffix_ids) - 3 - len(before_ids))
    ids = [*before_ids, specials[0], *prefix_ids, specials[1], *suffix_ids, specials[2]]
    return DecoderPrompt(ids=ids, static_len=len(before_ids) + 1 + static if static or before_ids else 0)


def codet5_clm_prompt(tok: CodeTokenizer, prefix: str, clm_token: str, budget: int) -> EncoderDecoderPrompt:
    """CodeT5+ decoder-only mode: the encoder sees [CLM], the decoder continues the code."""
    prefix_ids, _ = _encode_left_truncated(tok, prefix, budget)
    return EncoderDecoderPrompt(source_ids=tok.encode_with_specials(clm_token), prefix_ids=prefix_ids)


def codet5_span_prompt(tok: CodeTokenizer, prefix: str, suffix: str, budget: int) -> EncoderDecoderPrompt:
    """CodeT5+ span infilling: `prefix <extra_id_0> suffix` in the encoder."""
    prefix_ids, _ = _encode_left_truncated(tok, prefix, budget * 3 // 4)
    suffix_ids = tok.encode(suffix)[: budget - len(prefix_ids)]
    sentinel = tok.token_id(SPAN_SENTINEL)
    if sentinel is None:
        raise ValueError(f"the tokenizer has no {SPAN_SENTINEL} token: span infilling is not possible")
    template = tok.encode_with_specials("")
    body = [*prefix_ids, sentinel, *suffix_ids]
    # Put the body where the template's content goes (between its BOS and EOS, if any).
    specials_front = [i for i in template if i == tok.token_id(tok.bos_token or "")]
    specials_back = [i for i in template if i not in specials_front]
    return EncoderDecoderPrompt(source_ids=specials_front + body + specials_back)


def summary_prompt(tok: CodeTokenizer, code: str, budget: int) -> EncoderDecoderPrompt:
    """Encoder-decoder summarization: the code goes to the encoder, truncated to the budget."""
    ids = tok.encode_with_specials(code)
    if len(ids) > budget:
        ids = ids[: budget - 1] + ids[-1:]
    return EncoderDecoderPrompt(source_ids=ids)


CHAT_START, CHAT_END = "<|im_start|>", "<|im_end|>"
SUMMARY_SYSTEM = (
    "You write the first line of a docstring: one short sentence in the imperative mood that says "
    "what the function does, without repeating its name."
)
# Few-shot turns (code, summary) that fix the style, written for this project (not from any test
# set); chosen over a variant with a JavaScript example and over two other system messages on a
# slice of the summarizer recipe's validation split (bench/RESULTS.md).
SUMMARY_SHOTS: tuple[tuple[str, str], ...] = (
    ("def count_words(text):\n    return len(text.split())", "Return the number of words in text."),
    (
        "def save(self, path):\n    with open(path, \"w\") as f:\n        json.dump(self.data, f, indent=2)",
        "Write the data to a file as indented JSON.",
    ),
    ("def is_hidden(path):\n    name = os.path.basename(path)\n    return name.startswith('.')", "Return True if the file at path is hidden."),
    ("def reset(self):\n    self._items.clear()\n    self._size = 0", "Remove all items."),
)
SUMMARY_CODE_TOKENS = 256  # at most this much of a function goes into an instruct summary prompt (as the encoder-decoder's)
SUMMARY_CUT_MARK = "..."  # the line that replaces the end of a function cut to the budget


def truncate_code(tok: CodeTokenizer, code: str, budget: int) -> str:
    """`code` cut to at most about `budget` tokens: its start (the signature first), ending at a
    line break when one is past the first line, and a SUMMARY_CUT_MARK line for what is left out."""
    ids, offsets = tok.encode_with_offsets(code)
    if len(ids) <= budget:
        return code
    end = offsets[max(0, budget - len(tok.encode("\n" + SUMMARY_CUT_MARK)) - 1)][1]  # room for the mark's line
    line_end = code.rfind("\n", 0, end + 1)
    first_line_end = code.find("\n")
    cut = line_end if line_end > first_line_end >= 0 else end
    return code[:cut].rstrip() + "\n" + SUMMARY_CUT_MARK


def _chat_turn(role: str, text: str) -> str:
    return f"{CHAT_START}{role}\n{text}{CHAT_END}\n"


def chat_summary_prompt(tok: CodeTokenizer, code: str, budget: int) -> DecoderPrompt:
    """Decoder-only summarization by a chat (ChatML) instruct model: a system message, the
    SUMMARY_SHOTS as earlier turns, then the code (cut by `truncate_code` to SUMMARY_CODE_TOKENS and
    so that the whole prompt fits `budget`; special-token strings in it read as text); the
    assistant's reply is the summary. The fixed part before the code is the static (cacheable)
    part. ValueError when the tokenizer lacks the chat tokens."""
    missing = [t for t in (CHAT_START, CHAT_END) if tok.token_id(t) is None]
    if missing:
        raise ValueError(f"the tokenizer lacks the chat tokens {missing}: instruct summaries are not possible")
    head = _chat_turn("system", SUMMARY_SYSTEM) + "".join(
        _chat_turn("user", _fenced(shot)) + _chat_turn("assistant", summary) for shot, summary in SUMMARY_SHOTS
    )
    head_ids = tok.encode(head)
    start, end = tok.token_id(CHAT_START), tok.token_id(CHAT_END)
    reply = [start, *tok.encode("assistant\n")]

    def user_turn(text: str) -> list[int]:  # what `_chat_turn` writes, chat tokens in `text` read as text
        return [start, *tok.encode_literal("user\n" + _fenced(text)), end, *tok.encode("\n")]

    code_budget = min(SUMMARY_CODE_TOKENS, budget - len(head_ids) - len(user_turn("")) - len(reply))
    return DecoderPrompt(ids=[*head_ids, *user_turn(truncate_code(tok, code, code_budget)), *reply], static_len=len(head_ids))


def _fenced(code: str) -> str:
    return f"```\n{code}\n```"
