"""The summary cache: keys by model and function text, bounded LRU, hit and miss counts."""

from __future__ import annotations

import pytest

from inference.summary.cache import SummaryCache, summary_key


def test_key_depends_on_model_and_exact_code():
    key = summary_key("t5", "def f():\n    pass")
    assert key == summary_key("t5", "def f():\n    pass")
    assert key != summary_key("t5", "def f():\n    pass ")
    assert key != summary_key("codet5p-220m", "def f():\n    pass")
    assert summary_key("ab", "c") != summary_key("a", "bc")  # parts cannot run into each other


def test_get_counts_hits_and_misses():
    cache = SummaryCache()
    key = summary_key("m", "code")
    assert cache.get(key) is None
    cache.put(key, "Does a thing.")
    assert cache.get(key) == "Does a thing."
    assert cache.get(key) == "Does a thing."
    assert cache.stats() == {"hits": 2, "misses": 1, "size": 1, "capacity": 512}


def test_least_recently_used_entry_goes_first():
    cache = SummaryCache(capacity=2)
    a, b, c = (summary_key("m", name) for name in "abc")
    cache.put(a, "A.")
    cache.put(b, "B.")
    assert cache.get(a) == "A."  # a is now more recent than b
    cache.put(c, "C.")
    assert len(cache) == 2
    assert cache.get(b) is None
    assert (cache.get(a), cache.get(c)) == ("A.", "C.")


def test_put_replaces_and_refreshes_an_entry():
    cache = SummaryCache(capacity=2)
    a, b, c = (summary_key("m", name) for name in "abc")
    cache.put(a, "Old.")
    cache.put(b, "B.")
    cache.put(a, "New.")
    cache.put(c, "C.")
    assert cache.get(a) == "New." and cache.get(b) is None


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        SummaryCache(capacity=0)
