"""Drafts for speculative decoding by prompt lookup: code repeats itself, so the ids that followed
the latest earlier occurrence of the sequence's last few ids are a cheap guess at what comes next.

The engine checks a draft in one model pass and keeps the ids the model itself would have chosen,
so a draft changes how fast a completion comes, not which one, up to rounding (Saxena, "Prompt
Lookup Decoding", 2023; llama.cpp's `lookup` example).
"""

from __future__ import annotations

import numpy as np

MAX_NGRAM = 3  # the longest tail looked up
MIN_NGRAM = 2  # the shortest: one id alone repeats too often to predict what follows it


def draft(ids: np.ndarray, count: int, max_ngram: int = MAX_NGRAM, min_ngram: int = MIN_NGRAM) -> list[int]:
    """Up to `count` ids that followed the latest earlier occurrence of the longest tail of `ids`
    (`max_ngram` down to `min_ngram` ids) found earlier in `ids`; [] when none recurs."""
    if count <= 0:
        return []
    for n in range(max_ngram, min_ngram - 1, -1):
        if len(ids) <= n:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], n)  # every window followed by an id
        found = np.flatnonzero((windows == ids[-n:]).all(axis=1))
        if found.size:
            start = int(found[-1]) + n
            return ids[start:start + count].tolist()
    return []
