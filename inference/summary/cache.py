"""Summaries by a hash of the function's text: a second hover is instant, an edit misses only its function."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any


def summary_key(model_id: str, code: str) -> bytes:
    """The cache key of `code` summarized by the model `model_id` (a different model is a different key)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (model_id, code):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.digest()


class SummaryCache:
    """A bounded LRU map from `summary_key`s to summaries, counting hits and misses."""

    def __init__(self, capacity: int = 512) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._entries: OrderedDict[bytes, str] = OrderedDict()
        self.capacity = capacity
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> str | None:
        """The summary stored under `key` (now the most recently used one), or None."""
        summary = self._entries.get(key)
        if summary is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return summary

    def put(self, key: bytes, summary: str) -> None:
        """Store `summary`, dropping the least recently used entry beyond the capacity."""
        self._entries[key] = summary
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def stats(self) -> dict[str, Any]:
        """Counters for `codet5.status`."""
        return {"hits": self.hits, "misses": self.misses, "size": len(self._entries), "capacity": self.capacity}
