"""Verbs that start one-sentence summaries, and their third person (Go's doc comments want
"Name returns x.", where a summary says "Return x.").

The list is the imperative first words of the summarizer recipe's Python docstrings (its training
split's most common first words, nouns and words that are both left out: "list", "map", "number"),
plus a few that code summaries use; a first word not in it is not conjugated.
"""

from __future__ import annotations

SUMMARY_VERBS = frozenset("""
acquire add adjust append apply ask attempt bind build cache calculate call cancel change check clean clear close
collect combine compare compile compute configure connect constrain construct convert copy count create decide
decode decompose decrypt define delete detect determine disable display divide do download draw dump emit enable
encode encrypt ensure evaluate execute expand extend extract fail fetch filter find fit format forward generate get
handle hash initialize insert install instantiate invoke iterate join load lock log look make mark merge move
multiply normalize open override pad parse perform pick plot pop prepare preprocess print process produce push put
raise read receive reduce register release remove render replace report represent reset resize resolve retrieve
return rewrite run save schedule search select send set show sign simplify skip solve sort split start stop store
subscribe subtract swap take test tokenize transform translate try turn unlock update use validate verify wait wrap
write yield
""".split())
_IRREGULAR = {"do": "does", "undo": "undoes", "redo": "redoes"}


def third_person(verb: str) -> str:
    """"return" -> "returns", "fetch" -> "fetches", "apply" -> "applies", "do" -> "does"."""
    if verb in _IRREGULAR:
        return _IRREGULAR[verb]
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if verb.endswith("y") and len(verb) > 1 and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"
