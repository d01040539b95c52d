"""CodeXGLUE's code-to-text evaluator: `python -m bench.bleu REFERENCE_FILE < PREDICTIONS` reads
`id<TAB>text` files and prints the smoothed BLEU-4 (`inference.summary.bleu`) like the original script."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from inference.summary.bleu import corpus_bleu


def read_id_file(lines: Iterable[str]) -> dict[str, list[str]]:
    """`id<TAB>text` lines -> {id: [texts]} (a line with no tab is an id with empty text)."""
    out: dict[str, list[str]] = {}
    for line in lines:
        if not line.strip():
            continue
        rid, _, text = line.rstrip("\n").partition("\t")
        out.setdefault(rid.strip(), []).append(text)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m bench.bleu REFERENCE_FILE < PREDICTIONS", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        references = read_id_file(f)
    predictions = {rid: texts[0] for rid, texts in read_id_file(sys.stdin).items()}
    print(corpus_bleu(references, predictions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
