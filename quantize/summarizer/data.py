"""Collect, clean, deduplicate and split the summarization pairs (deterministic for a seed).

Sources: the Python standard library (PSF licence) and the installed distributions whose metadata
says MIT, BSD or Apache (see `licences`). Test suites, vendored third-party code and this project
itself are left out. The split is by module: every module's pairs go to exactly one of
train / valid / test.
"""

from __future__ import annotations

import json
import platform
import random
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from operator import attrgetter
from pathlib import Path

from quantize.summarizer.extract import Pair, normalized_code, pairs_from_source
from quantize.summarizer.licences import distribution_licence

SPLITS = ("train", "valid", "test")
EXCLUDED_DISTRIBUTIONS = frozenset({"codet5-lsp"})
_EXCLUDED_DIRS = frozenset({"test", "tests", "testing", "idle_test", "_vendor", "vendor", "vendored", "_vendored", "_distutils", "site-packages", "__pycache__"})
STDLIB_LICENCE = "PSF-2.0"


@dataclass(frozen=True)
class Source:
    """One body of code: a distribution (or the standard library) and its Python files."""

    name: str
    version: str
    licence: str
    root: Path
    files: tuple[Path, ...]  # relative to root


def _kept(relative: Path) -> bool:
    return relative.suffix == ".py" and not (set(relative.parts[:-1]) & _EXCLUDED_DIRS) and not relative.name.startswith("test_")


def stdlib_source() -> Source:
    """The standard library of the running interpreter, without its tests and site-packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p.relative_to(root) for p in root.rglob("*.py"))
    return Source("python-stdlib", platform.python_version(), STDLIB_LICENCE, root, tuple(f for f in files if _kept(f)))


def distribution_sources(distributions: Iterable[metadata.Distribution] | None = None) -> tuple[list[Source], list[tuple[str, str, str]]]:
    """(permissive sources, [(name, version, licence) of the distributions left out]), sorted by name."""
    included: dict[str, Source] = {}
    excluded: list[tuple[str, str, str]] = []
    for dist in distributions if distributions is not None else metadata.distributions():
        name = dist.metadata["Name"]
        licence = distribution_licence(dist)
        files = sorted({Path(str(f)) for f in dist.files or [] if _kept(Path(str(f)))})
        if name in EXCLUDED_DISTRIBUTIONS or not files:
            continue
        if not licence.permissive:
            excluded.append((name, dist.version, licence.text))
            continue
        root = Path(str(dist.locate_file("")))
        included.setdefault(name, Source(name, dist.version, licence.text, root, tuple(files)))
    return [included[k] for k in sorted(included, key=str.lower)], sorted(set(excluded), key=lambda e: e[0].lower())


def module_name(source: Source, relative: Path) -> str:
    """`source:dotted.module` (package `__init__` files name their package)."""
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return f"{source.name}:{'.'.join(parts)}"


def source_pairs(source: Source) -> Iterator[Pair]:
    """All usable pairs of one source, files in sorted order."""
    for relative in source.files:
        try:
            text = (source.root / relative).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        yield from pairs_from_source(text, module_name(source, relative))


def deduplicate(pairs: Iterable[Pair]) -> list[Pair]:
    """Keep the first of pairs with the same normalized code, or the same name and summary."""
    seen_code: set[str] = set()
    seen_summary: set[tuple[str, str]] = set()
    kept = []
    for pair in pairs:
        code_key = normalized_code(pair.code)
        summary_key = (pair.name, " ".join(pair.summary.lower().split()))
        if code_key in seen_code or summary_key in seen_summary:
            continue
        seen_code.add(code_key)
        seen_summary.add(summary_key)
        kept.append(pair)
    return kept


def split_by_module(pairs: list[Pair], seed: int, valid_fraction: float = 0.05, test_fraction: float = 0.05,
                    unit: Callable[[Pair], str] = attrgetter("module")) -> dict[str, list[Pair]]:
    """Shuffle the modules (or other units: `unit` names a pair's) with `seed`; the first
    `test_fraction` of them go to test, the next `valid_fraction` to valid, the rest to train."""
    units = sorted({unit(p) for p in pairs})
    random.Random(seed).shuffle(units)
    n_test = round(len(units) * test_fraction)
    n_valid = round(len(units) * valid_fraction)
    where = {m: "test" for m in units[:n_test]}
    where.update({m: "valid" for m in units[n_test : n_test + n_valid]})
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[where.get(unit(pair), "train")].append(pair)
    return splits


def write_jsonl(path: Path, pairs: Iterable[Pair]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[Pair]:
    with path.open(encoding="utf-8") as f:
        return [Pair(**json.loads(line)) for line in f]


def build_dataset(out_dir: Path, seed: int) -> dict:
    """Write `{train,valid,test}.jsonl` and `manifest.json` (sources, licences, counts) to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    packages, excluded = distribution_sources()
    sources = [stdlib_source(), *packages]
    raw: list[Pair] = []
    per_source = []
    for source in sources:
        pairs = list(source_pairs(source))
        raw.extend(pairs)
        per_source.append({"name": source.name, "version": source.version, "licence": source.licence, "files": len(source.files), "pairs": len(pairs)})
    unique = deduplicate(raw)
    splits = split_by_module(unique, seed)
    for name, pairs in splits.items():
        write_jsonl(out_dir / f"{name}.jsonl", pairs)
    kept_by_source: dict[str, int] = {}
    for pair in unique:
        source_name = pair.module.split(":", 1)[0]
        kept_by_source[source_name] = kept_by_source.get(source_name, 0) + 1
    for entry in per_source:
        entry["pairs_after_dedup"] = kept_by_source.get(entry["name"], 0)
    manifest = {
        "seed": seed,
        "sources": per_source,
        "excluded_distributions": [{"name": n, "version": v, "licence": lic} for n, v, lic in excluded],
        "pairs_before_dedup": len(raw),
        "pairs": {name: len(pairs) for name, pairs in splits.items()},
        "modules": {name: len({p.module for p in pairs}) for name, pairs in splits.items()},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
