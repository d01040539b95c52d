"""Which installed distributions may feed the training data: MIT, BSD or Apache per their metadata."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import Distribution

_PERMISSIVE_SPDX = re.compile(r"^(MIT(-\w+)?|0BSD|BSD-\d-Clause(-\w+)?|Apache-2\.0)$")
_PERMISSIVE_CLASSIFIERS = (
    "License :: OSI Approved :: MIT License",
    "License :: OSI Approved :: BSD License",
    "License :: OSI Approved :: Apache Software License",
)
_PERMISSIVE_WORDS = re.compile(r"^\s*(MIT|BSD|Apache)\b[\w .,:-]*$", re.IGNORECASE)
_LICENCE_CLASSIFIER = "License :: "


@dataclass(frozen=True)
class Licence:
    """What a distribution's metadata says about its licence, and whether it qualifies."""

    text: str  # the SPDX expression, classifier or licence field that decided
    permissive: bool


def spdx_is_permissive(expression: str) -> bool:
    """Whether an SPDX expression allows use under MIT, BSD or Apache terms only.

    `A OR B` qualifies if either side does, `A AND B` only if both do; `X WITH exception` counts as X.
    """
    for alternative in re.split(r"\s+OR\s+", expression.strip().strip("()")):
        terms = [t.strip().strip("()") for t in re.split(r"\s+AND\s+", alternative)]
        if terms and all(_PERMISSIVE_SPDX.match(re.split(r"\s+WITH\s+", t)[0].strip()) for t in terms):
            return True
    return False


def classify(metadata: dict[str, list[str]]) -> Licence:
    """Decide from `License-Expression`, then `License ::` classifiers, then a short `License` field.

    `metadata` maps a field name to its values (`Distribution.metadata` fields can repeat).
    """
    expression = next(iter(metadata.get("License-Expression", [])), "").strip()
    if expression:
        return Licence(expression, spdx_is_permissive(expression))
    classifiers = [c for c in metadata.get("Classifier", []) if c.startswith(_LICENCE_CLASSIFIER)]
    if classifiers:
        known = [c for c in classifiers if c != "License :: DFSG approved"]
        ok = bool(known) and all(c in _PERMISSIVE_CLASSIFIERS for c in known)
        return Licence("; ".join(classifiers), ok)
    field = next(iter(metadata.get("License", [])), "").strip()
    first_line = field.splitlines()[0] if field else ""
    return Licence(first_line, bool(first_line) and len(field) <= 60 and bool(_PERMISSIVE_WORDS.match(first_line)))


def distribution_licence(dist: Distribution) -> Licence:
    """The licence decision for an installed distribution."""
    meta = dist.metadata
    fields = {name: meta.get_all(name) or [] for name in ("License-Expression", "Classifier", "License")}
    return classify(fields)
