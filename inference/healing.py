"""Token healing: end every prompt on a clean token boundary, then make the model re-create the cut.

BPE tokenizers merge a newline with the indentation after it, and a space with the word after
it, so a prompt that ends in whitespace or in the middle of a word ends on a token the model
rarely saw in training. The prompt is backed off to the last clean boundary and only
continuations that start by re-writing the removed text are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


_PARTIAL_WORD = re.compile(r"\w+\Z")
_TRAILING_SPACE = re.compile(r"\s+\Z")


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


class HealingFilter:
    """Checks that generated text re-creates the cut, and passes on only what follows it."""

    def __init__(self, cut: str) -> None:
        self._cut = cut
        self._seen = ""
        self.diverged = False

    def feed(self, piece: str) -> str:
        """Take the next generated text; return the part the user gets ('' while re-creating the cut).

        Sets `diverged` when the text contradicts the cut; the caller then stops.
        """
        if self.diverged:
            return ""
        before = len(self._seen)
        self._seen += piece
        n = len(self._cut)
        if len(self._seen) <= n:
            if not self._cut.startswith(self._seen):
                self.diverged = True
            return ""
        if not self._seen.startswith(self._cut):
            self.diverged = True
            return ""
        return self._seen[max(before, n):]


class NoHealingToken(Exception):
    """No likely token re-creates the text cut from the prompt."""


class FirstTokenRejected(Exception):
    """A speculative generation's first token was refused; carries the most likely alternatives."""

    def __init__(self, candidates: list[int]) -> None:
        super().__init__(f"first token refused; {len(candidates)} alternatives")
        self.candidates = candidates


def top_k(logits: np.ndarray, k: int) -> list[int]:
    """Indices of the `k` largest logits, largest first."""
    k = min(k, logits.shape[0])
    best = np.argpartition(-logits, k - 1)[:k]
    return [int(i) for i in best[np.argsort(-logits[best])]]


HEALING_CANDIDATES = 256  # how many of the most likely first tokens are considered


def pick_healing_token(candidates: Sequence[int], cut: str, token_texts: Sequence[str]) -> int | None:
    """The first of `candidates` (most likely first) whose text agrees with `cut`: it starts the
    cut, or starts with it. This constrains the first generated token to re-create the cut text,
    instead of hoping greedy decoding does; None when no candidate agrees."""
    for token_id in candidates:
        text = token_texts[token_id] if 0 <= token_id < len(token_texts) else ""
        if text and "\ufffd" not in text and (cut.startswith(text) or text.startswith(cut)):
            return token_id
    return None
