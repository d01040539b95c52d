"""Smoothed sentence BLEU-4 as CodeXGLUE's code-to-text evaluator computes it.

Definition (CodeXGLUE `Code-Text/code-to-text/evaluator/bleu.py`, itself adapted from the MOSES
`bleu.py`): each text is lowercased and split into words and single punctuation characters, then
NIST-normalized (punctuation tokenized, lowercased); per sentence, n-gram precisions for n = 1..4
with add-one smoothing for n >= 2, the geometric mean, and a brevity penalty
min(0, 1 - (ref_len + 1) / (hyp_len + 1)) against the shortest reference; the score is the mean
over sentences x 100.

The metric of the summarization benchmark (bench/summarization.py) and of the summarizer's
training recipe (quantize/summarizer/training.py); `python -m bench.bleu` is the evaluator's
command line.
"""

from __future__ import annotations

import math
import re
import sys
import xml.sax.saxutils
from collections import Counter
from collections.abc import Mapping, Sequence

MAX_N = 4
_TINY = sys.float_info.min
_JOIN = [(re.compile(p), r) for p, r in ((r"<skipped>", ""), (r"-\n", ""), (r"\n", " "))]
_TOKENIZE = [
    (re.compile(p), r)
    for p, r in (
        (r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 "),  # punctuation (not the apostrophe)
        (r"([^0-9])([\.,])", r"\1 \2 "),  # period and comma unless after a digit
        (r"([\.,])([^0-9])", r" \1 \2"),  # period and comma unless before a digit
        (r"([0-9])(-)", r"\1 \2 "),  # dash after a digit
    )
]


def split_punctuation(text: str) -> str:
    """Words and single non-space, non-word characters, space-joined (the evaluator's first pass)."""
    return " ".join(re.findall(r"[\w]+|[^\s\w]", text))


def normalize(text: str) -> list[str]:
    """NIST mteval-v11a tokenization, lowercased."""
    for pattern, replacement in _JOIN:
        text = pattern.sub(replacement, text)
    text = xml.sax.saxutils.unescape(text, {"&quot;": '"'})
    text = f" {text} ".lower()
    for pattern, replacement in _TOKENIZE:
        text = pattern.sub(replacement, text)
    return text.split()


def _ngrams(words: Sequence[str]) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for n in range(1, MAX_N + 1) for i in range(len(words) - n + 1))


def sentence_bleu(references: Sequence[str], hypothesis: str) -> float:
    """Smoothed BLEU-4 of one hypothesis against its references, in [0, 1] (texts already prepared)."""
    refs = [normalize(r) for r in references]
    max_counts: Counter[tuple[str, ...]] = Counter()
    for ref in refs:
        for gram, count in _ngrams(ref).items():
            max_counts[gram] = max(max_counts[gram], count)
    hyp = normalize(hypothesis)
    correct = [0] * MAX_N
    for gram, count in _ngrams(hyp).items():
        correct[len(gram) - 1] += min(max_counts[gram], count)
    log_bleu = 0.0
    for k in range(MAX_N):
        guess = max(len(hyp) - k, 0)
        smooth = 1 if k > 0 else 0
        log_bleu += math.log(correct[k] + smooth + _TINY) - math.log(guess + smooth + _TINY)
    log_bleu /= MAX_N
    ref_len = min(len(r) for r in refs)
    brevity = min(0.0, 1 - (ref_len + 1) / (len(hyp) + 1))
    return math.exp(log_bleu + brevity)


def prepare(text: str) -> str:
    """The evaluator's view of a summary: stripped, lowercased, punctuation split off."""
    return split_punctuation(text.strip().lower())


def corpus_bleu(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> float:
    """Mean smoothed BLEU-4 x 100 over the ids present in both maps (raw texts; prepared here)."""
    scores = [
        sentence_bleu([prepare(r) for r in refs], prepare(predictions[key]))
        for key, refs in references.items()
        if key in predictions
    ]
    if not scores:
        raise ValueError("no prediction shares an id with the references")
    return 100.0 * sum(scores) / len(scores)


def bleu_of_pairs(references: Sequence[str], predictions: Sequence[str]) -> list[float]:
    """Per-example smoothed BLEU-4 x 100 for aligned lists of reference and predicted summaries."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    return [100.0 * sentence_bleu([prepare(r)], prepare(p)) for r, p in zip(references, predictions)]
