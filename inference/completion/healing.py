"""Token healing, the prompt's side: end every prompt on a clean token boundary (the generation's
side, the first token that re-creates the cut: `inference/engines/healed_generation.py`).

BPE tokenizers merge a newline with the indentation after it, and a space with the word after
it, so a prompt that ends in whitespace or in the middle of a word ends on a token the model
rarely saw in training. The prompt is backed off to the last clean boundary and only
continuations that start by re-writing the removed text are kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


_PARTIAL_WORD = re.compile(r"\w+\Z")
_TRAILING_SPACE = re.compile(r"\s+\Z")
_MARKS_ONLY = re.compile(r"[^\w\s]+")


@dataclass(frozen=True)
class HealedPrefix:
    """A prompt prefix split at its last clean boundary."""

    kept: str  # what the model is given
    cut: str  # what the model must write first (kept + cut == the original prefix)


def heal_prefix(prefix: str) -> HealedPrefix:
    """Cut a trailing partial identifier and the whitespace before it (newlines included)."""
    end = len(prefix)
    word = _PARTIAL_WORD.search(prefix, 0, end)
    if word:
        end = word.start()
    space = _TRAILING_SPACE.search(prefix, 0, end)
    if space:
        end = space.start()
    return HealedPrefix(kept=prefix[:end], cut=prefix[end:])


MAX_WORD_TOKENS = 3  # a cut word of more tokens is cut at its last token only
_OFFSET_CONTEXT_CHARS = 64  # text before the cut tokenized with it, so its tokens are the prompt's own


def limit_cut(healed: HealedPrefix, offsets: Callable[[str], list[tuple[int, int]]],
              max_word_tokens: int = MAX_WORD_TOKENS) -> HealedPrefix:
    """Cut only what the tokenizer joins to the cut word: its tokens, not whole-whitespace tokens
    before it, and only the last of them when the word spans more than `max_word_tokens` tokens.

    Whitespace the tokenizer keeps as tokens of their own (Qwen2's `"\n"`, `"   "` before
    `" return"`) stays in the prompt: cut with the word, the first token can re-create only the
    newline, free generation must then write the word again, and it often writes another
    (`"\n    return"` came back as `"\n    else:"`, and the completion was lost).

    Only the first generated token is constrained to agree with the cut; the rest must come from
    free generation. A long name cut whole (`k_EMsgGCServerWelcome`, 7 tokens) is often not
    written again token for token, and the completion is lost. A short partial word (`retu`:
    ` ret` + `u`) is still cut whole: a prompt ending in ` ret` is text a model rarely saw, since
    ` return` is one token (a tiny test model then wrote `retunter...`). The shortened cut starts
    where the tokenizer itself split, so the kept prompt is natural text. Measured on the
    CodeXGLUE py150 sample (engine path, 100 completions) with the first-token rule of
    pick_healing_token: empty completions 16 -> 14, edit similarity 47.8 -> 49.7 at 3 tokens;
    5 empties and 54.0 when every word of 2 or more tokens is cut at its last token, which the
    tiny model above does not survive. `offsets(text)` gives each token's (start, end) offsets.

    A prefix that ends in punctuation (`os.`, `print(`, `):`) has its last token cut when that token
    is punctuation alone: Qwen2's tokenizer joins a mark to the word after it (`.walk`, `(x`), so a
    prompt ending in a bare `.` is text the model never saw, and it wrote `os. walk(`.
    """
    if not healed.cut:
        return _cut_last_mark(healed.kept, offsets)
    start = max(0, len(healed.kept) - _OFFSET_CONTEXT_CHARS)
    window = healed.kept[start:] + healed.cut
    cut_at = len(window) - len(healed.cut)
    spans = [span for span in offsets(window) if span[1] > cut_at]
    words = [(a, b) for a, b in spans if window[a:b].strip()]
    if not words:
        return healed
    first = words[0] if len(words) <= max_word_tokens else spans[-1]
    new_cut_at = start + max(cut_at, first[0])
    prefix = healed.kept + healed.cut
    return HealedPrefix(kept=prefix[:new_cut_at], cut=prefix[new_cut_at:])


def _cut_last_mark(prefix: str, offsets: Callable[[str], list[tuple[int, int]]]) -> HealedPrefix:
    """`prefix` with its last token cut when that token is punctuation alone (no word, no space)."""
    start = max(0, len(prefix) - _OFFSET_CONTEXT_CHARS)
    window = prefix[start:]
    spans = offsets(window) if window else []
    if not spans or spans[-1][1] != len(window) or not _MARKS_ONLY.fullmatch(window[spans[-1][0]:]):
        return HealedPrefix(kept=prefix, cut="")
    return HealedPrefix(kept=prefix[:start + spans[-1][0]], cut=prefix[start + spans[-1][0]:])
