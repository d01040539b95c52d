"""Summaries in each language's doc comment convention (`in_convention`): Go starts with the name,
Javadoc takes the third person, Python docstrings, rustdoc and JSDoc keep the imperative (the third
person scored lower on the validation split for the last two)."""

from __future__ import annotations

import pytest

from inference.syntax import in_convention


@pytest.mark.parametrize(("summary", "go"), [
    ("Return the number of words.", "Count returns the number of words."),
    ("Returns the number of words.", "Count returns the number of words."),
    ("Fetch the page.", "Count fetches the page."),
    ("Apply the rule.", "Count applies the rule."),
    ("Copy the pool.", "Count copies the pool."),
    ("Number of items.", "Count number of items."),
    ("Process each item.", "Count processes each item."),
    ("Do nothing.", "Count does nothing."),
    ("A helper for tests.", "Count is a helper for tests."),
    ("Constructor with a message.", "Count is a constructor with a message."),
    ("Count the words.", "Count counts the words."),
    ("Count returns the words.", "Count returns the words."),
    ("Count is a no-op.", "Count is a no-op."),
    ("Reset.", "Count resets."),
    ("URL of the page.", "Count URL of the page."),
    ("Count", "Count"),
])
def test_go_starts_with_the_name_and_a_verb_in_the_third_person(summary, go):
    assert in_convention(summary, "go", "Count") == go


@pytest.mark.parametrize(("summary", "third_person"), [
    ("Return the number of words.", "Returns the number of words."),
    ("Returns the number of words.", "Returns the number of words."),
    ("Fetch the page.", "Fetches the page."),
    ("Apply the rule.", "Applies the rule."),
    ("Do nothing.", "Does nothing."),
    ("Check if the key is set.", "Checks if the key is set."),
    ("Reset.", "Resets."),
    ("return the sum.", "returns the sum."),
    ("Sum the numbers.", "Sum the numbers."),  # not a summary verb: as written
    ("Number of items.", "Number of items."),
    ("A helper for tests.", "A helper for tests."),
    ("Constructor with a message.", "Constructor with a message."),
    ("URL of the page.", "URL of the page."),
    ("GET the page.", "GET the page."),
    ("ParseURL wrapper.", "ParseURL wrapper."),
    ("", ""),
])
def test_java_and_typescript_take_the_third_person(summary, third_person):
    for language in ("java", "typescript", "tsx"):
        assert in_convention(summary, language, "count") == third_person


@pytest.mark.parametrize("language", ["python", "rust", "javascript"])
def test_python_rust_and_javascript_keep_the_imperative(language):
    assert in_convention("Return the number of words.", language, "count") == "Return the number of words."


def test_a_go_function_without_a_name_keeps_the_summary():
    assert in_convention("Return the handler.", "go", "") == "Return the handler."
