"""Lazy text streams over engine token ids."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator

from .healed_generation import HealingFilter, NoHealingToken
from .tokenizer import IncrementalDecoder

StopPredicate = Callable[[str], bool]

_OPEN_STREAMS: weakref.WeakSet = weakref.WeakSet()


class JobStopped(Exception):
    """A generation job was asked to stop (superseded by a newer request) before it finished."""


def close_open_streams() -> None:
    """Stop every stream still decoding (used before the runtime is torn down at exit)."""
    for stream in list(_OPEN_STREAMS):
        stream.close()


class TextStream:
    """Text pieces of a generation, produced as they are iterated.

    Iterating drives decoding; `close()` stops it at the next step (the engine iterator is
    closed, not just abandoned). `stop`, when given, sees the text so far after each piece and
    ends the generation when it returns True. `finish_reason` says why it ended: "end" (end
    token or length), "stop", "diverged" (the model did not re-create the healed text) or
    "closed".
    """

    def __init__(
        self,
        ids: Iterator[int],
        decoder: IncrementalDecoder,
        healing: HealingFilter | None = None,
        stop: StopPredicate | None = None,
    ) -> None:
        self._ids = ids
        self._decoder = decoder
        self._healing = healing
        self._stop = stop
        self.text = ""
        self.tokens = 0
        self.finish_reason: str | None = None
        _OPEN_STREAMS.add(self)

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        while self.finish_reason is None:
            try:
                token_id = next(self._ids)
            except StopIteration:
                self.finish_reason = "end"
                break
            except NoHealingToken:
                self.finish_reason = "diverged"
                break
            self.tokens += 1
            piece = self._decoder.push(token_id)
            if self._healing is not None and piece:
                piece = self._healing.feed(piece)
                if self._healing.diverged:
                    self.close("diverged")
                    break
            if not piece:
                continue
            self.text += piece
            if self._stop is not None and self._stop(self.text):
                self.close("stop")
            return piece
        raise StopIteration

    def read(self) -> str:
        """Consume the rest of the stream; return all the text it produced."""
        for _ in self:
            pass
        return self.text

    def close(self, reason: str = "closed") -> None:
        """Stop decoding now."""
        if self.finish_reason is None:
            self.finish_reason = reason
        close = getattr(self._ids, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
