"""Faithfulness audit: summaries of functions nobody here wrote, for a person to judge.

Samples `--count` functions without a docstring from the Python files under `--root` (by default
Debian's Python 3.11 standard library, tests left out), with a fixed seed, and writes each one's
code and the summary of every `--summarizer` (as a hover shows it) to a JSON file. The verdicts
(right / vague / wrong against the code, with a note) are a person's: they are added to that file
by hand (`verdict`, `note` and optionally `other_verdicts` per function; `judged`, the summarizer
judged) and `markdown(audit)`
is its RESULTS.md section (bench/results/faithfulness.json).

`python -m bench.faithfulness --out audit.json [--summarizer default] [--summarizer default-summarizer]`;
with `--polyglot build/summarizer/polyglot`, `--per-language` functions of each of JavaScript,
TypeScript, Java, Go and Rust are drawn from the five-language split's test packages instead.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .summarization import hover_text

ROOT = Path("/usr/lib/python3.11")
SEED = 14
COUNT = 30
MIN_LINES, MAX_LINES = 4, 40  # what a hover usually meets: not a one-liner, not a whole module's worth
_SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3"})


@dataclass(frozen=True)
class Function:
    """A function without a docstring: where it is, its dedented source and its language."""

    module: str
    name: str
    line: int
    code: str
    language: str = "python"


def functions_without_docstrings(root: Path) -> list[Function]:
    """Every function or method of MIN_LINES..MAX_LINES lines without a docstring under `root`, in path order."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if set(relative.parts[:-1]) & _SKIPPED_DIRS or relative.name.startswith("test"):
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        module = ".".join(relative.with_suffix("").parts)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or ast.get_docstring(node) is not None:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            segment = ast.get_source_segment(source, node, padded=True)
            if MIN_LINES <= lines <= MAX_LINES and segment:
                found.append(Function(module, node.name, node.lineno, textwrap.dedent(segment)))
    return sorted(found, key=lambda f: (f.module, f.line))


def undocumented_functions_of_packages(data_dir: Path) -> dict[str, list[Function]]:
    """By language, every function or method of MIN_LINES..MAX_LINES lines without a doc comment in
    the five-language split's test packages (`data_dir/manifest.json`), in package and path order."""
    from inference.summary.summaries import code_to_summarize
    from inference.syntax import functions_in
    from quantize.summarizer.doc_pairs import language_family, language_of
    from quantize.summarizer.polyglot import downloads_dir, package_texts

    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    found: dict[str, list[Function]] = {}
    for package, path, text in package_texts(manifest["archive"], manifest["suite"], downloads_dir(data_dir), set(manifest["packages_per_split"]["test"])):
        language = language_of(path)
        assert language is not None
        for info in functions_in(text, language, tests=False):
            if info.docstring is None and info.name and MIN_LINES <= info.end_line - info.start_line + 1 <= MAX_LINES:
                family = language_family(language)
                function = Function(f"{package}:{path}", info.name, info.start_line + 1, code_to_summarize(info), family)
                found.setdefault(family, []).append(function)
    return found


def sample_functions(root: Path = ROOT, count: int = COUNT, seed: int = SEED) -> list[Function]:
    """`count` functions drawn by `seed` from `functions_without_docstrings(root)`, in path order."""
    return _drawn(functions_without_docstrings(root), count, seed)


def sample_functions_by_language(data_dir: Path, per_language: int, seed: int = SEED) -> list[Function]:
    """`per_language` functions of each language drawn by `seed` from `undocumented_functions_of_packages`."""
    found = undocumented_functions_of_packages(data_dir)
    return [f for language in sorted(found) for f in _drawn(found[language], per_language, seed)]


def _drawn(candidates: list[Function], count: int, seed: int) -> list[Function]:
    keep = sorted(random.Random(seed).sample(range(len(candidates)), min(count, len(candidates))))
    return [candidates[i] for i in keep]


VERDICTS = ("right", "vague", "wrong")


def markdown(audit: dict[str, Any]) -> str:
    """The RESULTS.md section of a judged audit: one row per function, the verdict counts. Other
    summarizers' summaries are shown beside, with a verdict where one was given (`other_verdicts`)."""
    judged, functions = audit["judged"], audit["functions"]
    others = [spec for spec in functions[0]["summaries"] if spec != judged]

    def counted(verdicts: list[str]) -> str:
        return ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS)

    other_counts = "".join(
        f" `{o}`, judged the same way without notes: {counted([f['other_verdicts'][o] for f in functions])}."
        for o in others if all(o in f.get("other_verdicts", {}) for f in functions)
    )
    lines = [
        "## Faithfulness audit: summaries of code nobody here wrote",
        "",
        f"{len(functions)} functions without a docstring ({MIN_LINES}-{MAX_LINES} lines, tests left out) drawn with seed "
        f"{audit['seed']} from `{audit['root']}` by `python -m bench.faithfulness`. The summaries of `{judged}` (as a hover "
        f"shows them) were judged against the code by a person: **{counted([f['verdict'] for f in functions])}**."
        f"{other_counts} {audit.get('comment', '')}".rstrip(),
        "",
        "| # | function | " + " | ".join([f"`{judged}` summary", "verdict", "why", *(f"`{o}`" for o in others)]) + " |",
        "|---:|---|" + "---|" * (3 + len(others)),
    ]
    for i, f in enumerate(functions, 1):
        beside = [f["summaries"][o] + (f" ({f['other_verdicts'][o]})" if o in f.get("other_verdicts", {}) else "") for o in others]
        cells = [f["summaries"][judged], f["verdict"], f["note"], *beside]
        lines.append(f"| {i} | `{f['module']}.{f['name']}` (line {f['line']}) | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faithfulness", description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--summarizer", action="append", help="a summary model, repeatable (default: default)")
    parser.add_argument("--polyglot", type=Path, help="draw --per-language functions of each language from this "
                        "five-language data directory's test packages instead of --root")
    parser.add_argument("--per-language", type=int, default=6)
    parser.add_argument("--compute-type", default="auto", help="the summarizers' compute type (e.g. int4; default auto)")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    from inference import CodeModel

    if args.polyglot:
        functions = sample_functions_by_language(args.polyglot, args.per_language, args.seed)
    else:
        functions = sample_functions(args.root, args.count, args.seed)
    models = {spec: CodeModel(spec, compute_type=args.compute_type, cpu_threads=2) for spec in args.summarizer or ["default"]}
    records = [{**asdict(f), "summaries": {spec: hover_text(m, f.code, f.language, f.name) for spec, m in models.items()}} for f in functions]
    root = f"{args.polyglot} (test packages)" if args.polyglot else str(args.root)
    audit = {"root": root, "seed": args.seed, "compute_type": args.compute_type, "functions": records}
    args.out.write_text(json.dumps(audit, indent=1) + "\n", encoding="utf-8")
    for record in records:
        print(f"{record['module']}.{record['name']}:{record['line']}: {record['summaries']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
