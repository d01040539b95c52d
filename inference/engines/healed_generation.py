"""Token healing, the generation's side: the first generated token re-creates the text the prompt
stage cut (`inference/completion/healing.py`), and only what follows the cut is passed on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


def _text(token_id: int, token_texts: Sequence[str]) -> str:
    text = token_texts[token_id] if 0 <= token_id < len(token_texts) else ""
    return "" if "\ufffd" in text else text


def _agrees(text: str, cut: str) -> bool:
    return bool(text) and (cut.startswith(text) or text.startswith(cut))


def _must_cover(cut: str) -> bool:
    """Whether the first token should write all of `cut`. A cut ending in a word is one token
    of the prompt (see limit_cut) that the model must write whole or leave to chance; a cut ending
    in whitespace is naturally written in parts: BPE gives its last space to the next word
    (`"\n   "` then `" return"`)."""
    return not cut[-1:].isspace()


def accepts_first_token(token_id: int, cut: str, token_texts: Sequence[str]) -> bool:
    """Whether the model's own first token re-creates the cut well enough to keep its generation."""
    text = _text(token_id, token_texts)
    return text.startswith(cut) if _must_cover(cut) else _agrees(text, cut)


def pick_healing_token(candidates: Sequence[int], cut: str, token_texts: Sequence[str]) -> int | None:
    """The token that re-creates the cut, from `candidates` (most likely first): the first that
    agrees with it (writes a start of it, or all of it and more), and for a cut ending in a word
    the first that writes all of it when one does (else free generation must finish the word,
    which it may not). This constrains the first generated token instead of hoping greedy
    decoding re-creates the cut; None when no candidate agrees with it."""
    agreeing = [t for t in candidates if _agrees(_text(t, token_texts), cut)]
    if _must_cover(cut):
        return next((t for t in agreeing if _text(t, token_texts).startswith(cut)), agreeing[0] if agreeing else None)
    return agreeing[0] if agreeing else None
