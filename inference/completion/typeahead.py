"""Typed-ahead cache: when the user types the start of the suggestion shown, serve the rest at once.

It also holds speculative suggestions: the one that follows a suggestion shown, computed as if it
had been accepted and keyed by that document, so it is served at once when the user accepts.
An entry matches only the exact text before and after the cursor it was computed for.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(frozen=True)
class _Entry:
    prefix_len: int
    prefix_digest: bytes
    suffix_digest: bytes
    completion: str
    speculative: bool


class TypeaheadCache:
    """Recent suggestions per document, keyed by the text before and after the cursor."""

    def __init__(self, capacity: int = 64) -> None:
        self._entries: OrderedDict[tuple[str, bytes], _Entry] = OrderedDict()
        self._capacity = capacity
        self.hits = 0  # lookups served, speculative ones included
        self.speculative_hits = 0  # lookups served by a speculative entry
        self.misses = 0

    def store(self, uri: str, prefix: str, suffix: str, completion: str, *, speculative: bool = False) -> None:
        """Remember that `completion` was suggested (or, `speculative`, computed ahead) between
        `prefix` and `suffix`."""
        if not completion:
            return
        key = (uri, _digest(prefix))
        self._entries[key] = _Entry(len(prefix), key[1], _digest(suffix), completion, speculative)
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def lookup(self, uri: str, prefix: str, suffix: str) -> str | None:
        """The rest of a stored suggestion that the text typed since agrees with, else None."""
        entry, rest = self._match(uri, prefix, suffix)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self.speculative_hits += entry.speculative
        return rest

    def holds(self, uri: str, prefix: str, suffix: str) -> bool:
        """Whether `lookup` would serve something here (the counters do not move)."""
        return self._match(uri, prefix, suffix)[0] is not None

    def _match(self, uri: str, prefix: str, suffix: str) -> tuple[_Entry | None, str]:
        suffix_digest = _digest(suffix)
        for (entry_uri, _), entry in reversed(self._entries.items()):
            if entry_uri != uri or entry.prefix_len > len(prefix) or entry.suffix_digest != suffix_digest:
                continue
            typed = prefix[entry.prefix_len:]
            if (
                len(typed) < len(entry.completion)
                and entry.completion.startswith(typed)
                and entry.completion[len(typed):].strip()
                and _digest(prefix[: entry.prefix_len]) == entry.prefix_digest
            ):
                return entry, entry.completion[len(typed):]
        return None, ""

    def stats(self) -> dict[str, int]:
        """The counters, as `codet5.status` reports them."""
        return {"hits": self.hits, "speculativeHits": self.speculative_hits, "misses": self.misses}

    def forget(self, uri: str) -> None:
        """Drop a closed document's entries."""
        for key in [k for k in self._entries if k[0] == uri]:
            del self._entries[key]
