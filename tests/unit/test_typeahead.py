from inference.completion.typeahead import TypeaheadCache

URI = "file:///a.py"


def test_typing_the_start_of_a_suggestion_serves_the_rest():
    cache = TypeaheadCache()
    cache.store(URI, "x = foo(", ")\n", "a, b")
    assert cache.lookup(URI, "x = foo(a", ")\n") == ", b"
    assert cache.lookup(URI, "x = foo(a, ", ")\n") == "b"
    assert cache.hits == 2


def test_diverging_text_or_a_changed_suffix_or_document_misses():
    cache = TypeaheadCache()
    cache.store(URI, "x = foo(", ")\n", "a, b")
    assert cache.lookup(URI, "x = foo(c", ")\n") is None
    assert cache.lookup(URI, "x = foo(a", "]\n") is None
    assert cache.lookup(URI, "y = foo(a", ")\n") is None
    assert cache.lookup("file:///b.py", "x = foo(a", ")\n") is None
    assert cache.lookup(URI, "x = foo(a, b", ")\n") is None  # nothing left to serve
    assert cache.misses == 5


def test_identical_position_is_a_hit_and_forget_drops_a_document():
    cache = TypeaheadCache()
    cache.store(URI, "p", "", "rint(x)")
    assert cache.lookup(URI, "p", "") == "rint(x)"
    cache.forget(URI)
    assert cache.lookup(URI, "p", "") is None


def test_capacity_is_bounded():
    cache = TypeaheadCache(capacity=3)
    for i in range(5):
        cache.store(URI, f"line{i} = ", "", "value")
    assert cache.lookup(URI, "line0 = v", "") is None
    assert cache.lookup(URI, "line4 = v", "") == "alue"
