"""Summarization pairs in JavaScript, TypeScript, Java, Go and Rust, from Debian packages, split by package.

Groups of `main` packages of one Debian suite, at most MAX_PACKAGE_BYTES each: Go's `golang-*-dev`
and Rust's `librust-*-dev` (they install their sources), JavaScript's `node-*` and Java's
`lib*-java` (their code from the upstream tarball of their source package: the binary packages hold
jars, or built and bundled JavaScript where TypeScript sources are rare). Packages are taken in a
seeded order until `per_group` of each group gave pairs (at most ATTEMPTS_PER_PACKAGE times as many
tried: downloads the archive does not serve are recorded and passed over). A package counts only if
its DEP-5 `copyright` gives `Files: *` an MIT, BSD or Apache licence, and each file must be covered
by such a licence too; tests, examples, vendored and built files are left out. A package gives at
most MAX_PAIRS_PER_PACKAGE pairs (a seeded sample). Pairs are deduplicated over all packages (the
same normalized code, or the same name and summary) and split by package, the packages of each main
language on their own: no package has pairs in two splits. Test functions inside source files are
left out too (`functions_in(..., tests=False)`). Downloads and each package's pairs are kept under
`work` (the downloads may be another data set's), so an interrupted run resumes.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from quantize.summarizer.data import SPLITS, deduplicate, split_by_module, write_jsonl
from quantize.summarizer.debian_archive import (
    ArchiveFile,
    BinaryPackage,
    copyright_stanzas,
    deb_members,
    download,
    file_licence,
    is_permissive,
    read_member,
    read_packages,
    read_sources,
    tarball_members,
)
from quantize.summarizer.doc_pairs import language_of, pairs_from_file
from quantize.summarizer.extract import Pair

GROUPS = ("go", "rust", "java", "javascript")  # javascript packages give JavaScript and TypeScript pairs
UPSTREAM_GROUPS = ("java", "javascript")  # their code is read from the upstream tarball (jars; built or bundled files)
MAX_PAIRS_PER_PACKAGE = 150  # a seeded sample of a larger package's pairs, so that a few large ones do not make a language
MAX_PACKAGE_BYTES = 4 * 1024 * 1024
MAX_FILE_BYTES = 300 * 1024
ATTEMPTS_PER_PACKAGE = 8
TEST_FRACTION = 0.15
VALID_FRACTION = 0.05
_EXCLUDED_DIRS = frozenset({"test", "tests", "testdata", "testing", "__tests__", "__mocks__", "spec", "specs", "vendor",
                            "third_party", "third-party", "node_modules", "dist", "build", "out", "examples", "example",
                            "benches", "benchmark", "benchmarks", "fixtures", "docs", "debian"})
_TEST_FILE_ENDINGS = ("_test.go", ".test.js", ".test.ts", ".spec.js", ".spec.ts", "Test.java", "Tests.java")


@dataclass(frozen=True)
class Candidate:
    """A package of one group: the binary package, and for Java and JavaScript the upstream tarball holding its code."""

    group: str
    package: BinaryPackage
    code_tarball: ArchiveFile | None = None


@dataclass(frozen=True)
class PackageReport:
    """What one package gave: its licence, the files used and left out for their licence, its pairs."""

    name: str
    version: str
    group: str
    licence: str | None
    files_used: int
    files_other_licence: int
    pairs: int


def group_of(package: BinaryPackage) -> str | None:
    name = package.name
    if name.startswith("golang-") and name.endswith("-dev") and package.section == "golang":
        return "go"
    if name.startswith("librust-") and name.endswith("-dev"):
        return "rust"
    if name.startswith("node-") and package.section == "javascript":
        return "javascript"
    if name.startswith("lib") and name.endswith("-java") and package.section == "java":
        return "java"
    return None


def candidates(packages: list[BinaryPackage], sources: dict[str, tuple[ArchiveFile, ...]]) -> dict[str, list[Candidate]]:
    """The packages of each group small enough to fetch, sorted by name (UPSTREAM_GROUPS' need an upstream tarball)."""
    found: dict[str, list[Candidate]] = {group: [] for group in GROUPS}
    for package in packages:
        group = group_of(package)
        if group is None or package.file.size > MAX_PACKAGE_BYTES:
            continue
        if group in UPSTREAM_GROUPS:
            orig = next((f for f in sources.get(package.source, ()) if ".orig.tar" in f.path), None)
            if orig is not None and orig.size <= MAX_PACKAGE_BYTES:
                found[group].append(Candidate(group, package, orig))
        else:
            found[group].append(Candidate(group, package))
    return {group: sorted(found[group], key=lambda c: c.package.name) for group in GROUPS}


def seeded_order(found: list[Candidate], seed: int, group: str) -> list[Candidate]:
    order = list(found)
    random.Random(f"{seed}:{group}").shuffle(order)
    return order


def kept_path(path: str) -> bool:
    """A source file of one of the languages, not a test, example, vendored or built file."""
    parts = path.split("/")
    return (not set(parts[:-1]) & _EXCLUDED_DIRS and language_of(path) is not None
            and not parts[-1].startswith("test_") and not parts[-1].endswith(_TEST_FILE_ENDINGS))


def licensed_texts(archive: str, candidate: Candidate, cache: Path) -> tuple[str | None, Iterator[tuple[str, str, bool]]]:
    """(the licence of the package's `Files: *`, its kept source files as (path, text, whether their
    licence qualifies)); no files when the package's licence does not qualify. Downloads what is missing."""
    package = candidate.package
    deb = download(archive, package.file, cache)
    copyright_path = f"usr/share/doc/{package.name}/copyright"
    found = next((copyright_stanzas(read_member(tar, member).decode("utf-8", "replace"))
                  for path, tar, member in deb_members(deb) if path == copyright_path), [])
    licence = file_licence("*", found) if found else None
    if not is_permissive(licence):
        return licence, iter(())
    if candidate.code_tarball is not None:
        members = tarball_members(download(archive, candidate.code_tarball, cache))
    else:
        members = deb_members(deb)
    return licence, ((path, text, is_permissive(file_licence(path, found))) for path, text in _source_texts(members))


def package_pairs(archive: str, candidate: Candidate, cache: Path) -> tuple[PackageReport, list[Pair]]:
    """The pairs of one package (none when its licence does not qualify)."""
    package = candidate.package
    licence, texts = licensed_texts(archive, candidate, cache)
    pairs: list[Pair] = []
    used = other = 0
    for path, text, permissive in texts:
        if not permissive:
            other += 1
            continue
        used += 1
        language = language_of(path)
        assert language is not None
        pairs.extend(pairs_from_file(text, language, f"debian:{package.name}:{path}"))
    return PackageReport(package.name, package.version, candidate.group, licence, used, other, len(pairs)), pairs


def _source_texts(members: Iterator) -> Iterator[tuple[str, str]]:
    for path, tar, member in members:
        if member.size <= MAX_FILE_BYTES and kept_path(path):
            try:
                yield path, read_member(tar, member).decode("utf-8")
            except UnicodeDecodeError:
                continue


def main_languages(pairs: list[Pair]) -> dict[str, str]:
    """Each package's language with the most pairs (a JavaScript package may have TypeScript ones)."""
    counts: dict[str, Counter[str]] = {}
    for pair in pairs:
        counts.setdefault(package_of(pair), Counter())[pair.language] += 1
    return {package: count.most_common(1)[0][0] for package, count in counts.items()}


def capped(pairs: list[Pair], seed: int, package: str) -> list[Pair]:
    """At most MAX_PAIRS_PER_PACKAGE of one package's pairs (a seeded sample, in their order)."""
    if len(pairs) <= MAX_PAIRS_PER_PACKAGE:
        return pairs
    keep = sorted(random.Random(f"{seed}:{package}").sample(range(len(pairs)), MAX_PAIRS_PER_PACKAGE))
    return [pairs[i] for i in keep]


def package_texts(archive: str, suite: str, cache: Path, names: set[str]) -> Iterator[tuple[str, str, str]]:
    """(package, path, text) of the kept source files of the packages `names` whose licence qualifies
    (from the downloads kept in `cache`)."""
    found = candidates(read_packages(archive, suite, cache), read_sources(archive, suite, cache))
    for candidate in sorted((c for group in found.values() for c in group if c.package.name in names), key=lambda c: c.package.name):
        for path, text, permissive in licensed_texts(archive, candidate, cache)[1]:
            if permissive:
                yield candidate.package.name, path, text


def work_dir(out_dir: Path) -> Path:
    """Where the downloads and each package's pairs of the data set in `out_dir` are kept (beside it)."""
    return out_dir.with_name(out_dir.name + "-work")


def downloads_dir(out_dir: Path) -> Path:
    """Where the archive's files for the data set in `out_dir` are: its manifest's `downloads`, else in its work folder."""
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    return Path(manifest.get("downloads") or work_dir(out_dir) / "downloads")


def package_of(pair: Pair) -> str:
    """The package a pair came from (`debian:NAME:path` -> NAME)."""
    return pair.module.split(":", 2)[1]


def _cached_package(archive: str, candidate: Candidate, work: Path, cache: Path) -> tuple[PackageReport, list[Pair]]:
    """`package_pairs` (downloads in `cache`), kept in `work/packages/NAME_VERSION.json` so that a rerun does not repeat it."""
    package = candidate.package
    path = work / "packages" / f"{package.name}_{package.version.replace(':', '_')}.json"
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        return PackageReport(**saved["report"]), [Pair(**p) for p in saved["pairs"]]
    report, pairs = package_pairs(archive, candidate, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"report": asdict(report), "pairs": [asdict(p) for p in pairs]}), encoding="utf-8")
    return report, pairs


def collect(archive: str, found: dict[str, list[Candidate]], per_group: int, seed: int, work: Path, cache: Path,
            log: Callable[[str], None] = print) -> tuple[list[dict], list[Pair]]:
    """(a report per package tried, all pairs): each group's packages in seeded order until `per_group` gave pairs."""
    reports: list[dict] = []
    pairs: list[Pair] = []
    for group in GROUPS:
        gave = 0
        for candidate in seeded_order(found[group], seed, group)[: ATTEMPTS_PER_PACKAGE * per_group]:
            if gave == per_group:
                break
            try:
                report, found_pairs = _cached_package(archive, candidate, work, cache)
            except (OSError, ValueError, EOFError) as exc:  # not served, not verified or not readable: passed over
                reports.append({"name": candidate.package.name, "version": candidate.package.version, "group": group, "error": str(exc)})
                continue
            reports.append(asdict(report))
            pairs.extend(capped(found_pairs, seed, candidate.package.name))
            gave += bool(found_pairs)
        log(f"polyglot: {group}: {gave} packages gave pairs")
    return reports, pairs


def build_polyglot(out_dir: Path, work: Path, archive: str, suite: str, per_group: int, seed: int,
                   downloads: Path | None = None) -> dict:
    """Write `{train,valid,test}.jsonl` and `manifest.json` (packages, licences, counts) to `out_dir`; the
    archive's files are kept in `downloads` (default `work/downloads`), each package's pairs in `work`."""
    cache = downloads or work / "downloads"
    found = candidates(read_packages(archive, suite, cache), read_sources(archive, suite, cache))
    reports, raw = collect(archive, found, per_group, seed, work, cache)
    unique = deduplicate(raw)
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    dominant = main_languages(unique)
    for language in sorted(set(dominant.values())):  # each language split on its own, so that each has test packages
        of_language = [p for p in unique if dominant[package_of(p)] == language]
        for name, part in split_by_module(of_language, seed, VALID_FRACTION, TEST_FRACTION, unit=package_of).items():
            splits[name].extend(part)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_jsonl(out_dir / f"{name}.jsonl", splits[name])
    manifest = {
        "archive": archive,
        "suite": suite,
        "seed": seed,
        "per_group": per_group,
        "downloads": str(cache.resolve()),
        "packages": reports,
        "pairs_before_dedup": len(raw),
        "pairs": {name: dict(sorted(Counter(p.language for p in splits[name]).items())) for name in SPLITS},
        "packages_per_split": {name: sorted({package_of(p) for p in splits[name]}) for name in SPLITS},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
