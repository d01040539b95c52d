"""A generated summary in the convention of the doc comments it goes into.

Summarizers write Python's imperative ("Return the sum."), which PEP 257 asks of docstrings. Go doc
comments start with the name and a verb in the third person ("Sum returns the sum."); Javadoc
(Oracle's "How to Write Doc Comments for the Javadoc Tool") is descriptive, in the third person
("Returns the sum."), and so are TSDoc's own examples. Rustdoc's guidelines (RFC 1574) ask for the
third person too, and JSDoc has no rule: Rust and JavaScript stay as the model writes them, because
the third person did not score higher there (bench/RESULTS.md, issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass

from .verbs import SUMMARY_VERBS, third_person

THIRD_PERSON_LANGUAGES = frozenset({"java", "typescript", "tsx"})
_ARTICLES = frozenset({"a", "an", "the"})
_ROLE_NOUNS = frozenset({"constructor", "helper", "wrapper", "callback", "handler", "shortcut", "alias", "utility",
                         "function", "method", "factory", "getter", "setter", "accessor", "convenience"})


def in_convention(summary: str, language: str, name: str) -> str:
    """`summary` as a doc comment on the function `name` in `language` (a FunctionInfo's) starts:
    Go: "Return x." -> "Name returns x."; Java and TypeScript: "Return x." -> "Returns x.";
    others as written. A first word that is not a summary verb (verbs.SUMMARY_VERBS) is kept."""
    if language == "go" and name:
        return _go_line(summary, name)
    if language in THIRD_PERSON_LANGUAGES:
        start = _Start.of(summary)
        verb = start.third_person()
        if verb is not None:
            return (verb.capitalize() if start.core[0].isupper() else verb) + start.tail
    return summary


@dataclass(frozen=True)
class _Start:
    """A line's first word without its punctuation (`core`), and what follows it (`tail`)."""

    core: str
    tail: str
    rest: str  # the line after the first space

    @classmethod
    def of(cls, line: str) -> _Start:
        first, _, rest = line.partition(" ")
        core = first.rstrip(".,;:!?")
        return cls(core, first[len(core):] + (f" {rest}" if rest else ""), rest)

    @property
    def word(self) -> str:
        return self.core.lower()

    @property
    def plain(self) -> bool:
        """A word as sentences start ("Return", "return"), not "URL", "ParseURL" or "x.y"."""
        return self.core.isalpha() and self.core[1:].islower()

    def third_person(self) -> str | None:
        """"return" -> "returns" when the word is a plain summary verb, else None."""
        return third_person(self.word) if self.plain and self.word in SUMMARY_VERBS else None


def _go_line(line: str, name: str) -> str:
    """Go doc comments start with the name, then a verb in the third person, as Go's linters ask:
    "Return x." -> "Name returns x.", "Returns x." -> "Name returns x.", "A helper." -> "Name is a
    helper.", "Helper for x." -> "Name is a helper for x."; other first words are kept as written
    ("Number of items." -> "Name number of items.")."""
    if not line or line == name:
        return name
    start = _Start.of(line)
    word = start.word
    if start.core == name and (start.third_person() is None or start.rest.split(" ", 1)[0].endswith("s")):
        return line  # already "Name returns ...", "Name is ...", or a name that is no verb
    if start.plain or len(start.core) == 1:
        if word in _ARTICLES:
            return f"{name} is {word}{start.tail}"
        if word in _ROLE_NOUNS:
            return f"{name} is a {word}{start.tail}"
        return f"{name} {start.third_person() or word}{start.tail}"
    return f"{name} {line}"  # an acronym or a symbol: kept as written
