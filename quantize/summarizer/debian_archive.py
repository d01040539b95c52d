"""Packages from a Debian archive: the indexes, verified downloads, what is inside a package, and
the licence of each file.

Debian is the one archive of Go, Rust, Java and JavaScript code reachable from the machines this
recipe runs on, and every package carries a machine-readable licence file (`copyright`, DEP-5)
that says which licence covers which files of its source. `archive` is a URL
(`https://deb.debian.org/debian`, or `file://` for a local mirror); every file is checked against
the SHA-256 its index gives and kept under `cache`, so an interrupted run resumes. Nothing is
unpacked to disk or run: members are read from the archives in memory.
"""

from __future__ import annotations

import fnmatch
import io
import lzma
import re
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from inference.models.wheel_sources import sha256_file
from quantize.summarizer.licences import spdx_is_permissive

DEFAULT_ARCHIVE = "https://deb.debian.org/debian"
DEFAULT_SUITE = "trixie"
BINARY_INDEXES = ("binary-all", "binary-amd64")
_DEP5_NAMES = {"expat": "MIT", "mit": "MIT", "apache-2.0": "Apache-2.0", "apache-2": "Apache-2.0", "0bsd": "0BSD",
               "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause"}
_CHECKSUM = re.compile(r"^\s*([0-9a-f]{64})\s+(\d+)\s+(\S+)\s*$")
_AR_MAGIC = b"!<arch>\n"


@dataclass(frozen=True)
class ArchiveFile:
    """A file of the archive's pool: its path under the archive, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BinaryPackage:
    name: str
    version: str
    section: str
    source: str  # the source package's name
    file: ArchiveFile


@dataclass(frozen=True)
class Stanza:
    """A DEP-5 `Files:` stanza: its patterns and the licence named for them (in SPDX spelling)."""

    patterns: tuple[str, ...]
    licence: str


def paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The fields of each deb822 paragraph of `text` (continuation lines joined with newlines)."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif line[0] in " \t" and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    if fields:
        yield fields


def parse_packages(text: str) -> list[BinaryPackage]:
    """The packages of a `Packages` index that give their file's SHA-256."""
    found = []
    for fields in paragraphs(text):
        if {"Package", "Filename", "Size", "SHA256"} <= fields.keys():
            source = fields.get("Source", fields["Package"]).split()[0]
            found.append(BinaryPackage(fields["Package"], fields.get("Version", ""), fields.get("Section", ""), source,
                                       ArchiveFile(fields["Filename"], int(fields["Size"]), fields["SHA256"])))
    return found


def parse_sources(text: str) -> dict[str, tuple[ArchiveFile, ...]]:
    """Each source package of a `Sources` index: its files (with SHA-256) by package name."""
    found = {}
    for fields in paragraphs(text):
        if "Package" in fields and "Directory" in fields:
            found[fields["Package"]] = tuple(ArchiveFile(f"{fields['Directory']}/{m[3]}", int(m[2]), m[1])
                                             for line in fields.get("Checksums-Sha256", "").splitlines() if (m := _CHECKSUM.match(line)))
    return found


def _index(archive: str, suite: str, part: str, cache: Path) -> str:
    target = cache / f"{part.replace('/', '-')}-{suite}.xz"
    if not target.is_file():
        _fetch(f"{archive}/dists/{suite}/main/{part}.xz", target)
    return lzma.decompress(target.read_bytes()).decode("utf-8", "replace")


def read_packages(archive: str, suite: str, cache: Path) -> list[BinaryPackage]:
    """The binary packages of `suite`'s `main` (architecture-independent ones and amd64's), each name once."""
    seen: dict[str, BinaryPackage] = {}
    for part in BINARY_INDEXES:
        for package in parse_packages(_index(archive, suite, f"{part}/Packages", cache)):
            seen.setdefault(package.name, package)
    return list(seen.values())


def read_sources(archive: str, suite: str, cache: Path) -> dict[str, tuple[ArchiveFile, ...]]:
    return parse_sources(_index(archive, suite, "source/Sources", cache))


def download(archive: str, file: ArchiveFile, cache: Path) -> Path:
    """`file` under `cache`, fetched unless already there; ValueError if its SHA-256 is not the index's."""
    target = cache / file.path
    if not (target.is_file() and sha256_file(target) == file.sha256):
        _fetch(f"{archive}/{file.path}", target)
        if sha256_file(target) != file.sha256:
            target.unlink()
            raise ValueError(f"{file.path}: its SHA-256 is not the one the index gives")
    return target


def deb_members(deb: Path) -> Iterator[tuple[str, tarfile.TarFile, tarfile.TarInfo]]:
    """(path without its leading `./`, the open tar, the member) for each regular file a `.deb` installs."""
    data = deb.read_bytes()
    if not data.startswith(_AR_MAGIC):
        raise ValueError(f"{deb.name}: not a Debian package")
    offset = len(_AR_MAGIC)
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        name, size = header[:16].decode("ascii", "replace").strip().rstrip("/"), int(header[48:58])
        body = data[offset + 60 : offset + 60 + size]
        offset += 60 + size + size % 2
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as archive:
                for member in archive:
                    if member.isfile():
                        yield member.name.removeprefix("./"), archive, member
            return
    raise ValueError(f"{deb.name}: no data.tar member")


def tarball_members(tarball: Path) -> Iterator[tuple[str, tarfile.TarFile, tarfile.TarInfo]]:
    """(path inside the source tree, the open tar, the member) for each regular file of an upstream
    tarball; its top directory is left out of the path, as DEP-5 paths count."""
    with tarfile.open(tarball) as archive:
        for member in archive:
            if member.isfile():
                parts = member.name.removeprefix("./").split("/")
                yield "/".join(parts[1:]) if len(parts) > 1 else parts[0], archive, member


def read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = archive.extractfile(member)
    return extracted.read() if extracted is not None else b""


def copyright_stanzas(text: str) -> list[Stanza]:
    """The `Files:` stanzas of a DEP-5 `copyright` file ([] if it is not DEP-5)."""
    return [Stanza(tuple(fields["Files"].split()), spdx_licence(fields["License"].splitlines()[0]))
            for fields in paragraphs(text) if "Files" in fields and "License" in fields]


def spdx_licence(dep5: str) -> str:
    """A DEP-5 short licence name or expression in SPDX spelling (`Expat or Apache-2.0` -> `MIT OR Apache-2.0`)."""
    spelled = []
    for word in re.split(r"(\s+|[()])", dep5.strip()):
        lower = word.lower()
        spelled.append(word.upper() if lower in ("or", "and", "with") else _DEP5_NAMES.get(lower, word))
    return "".join(spelled)


def file_licence(path: str, found: list[Stanza]) -> str | None:
    """The licence DEP-5 gives `path`: the last stanza that matches it. DEP-5 patterns are relative
    to the source tree, and where a package installs a file is not always its place there
    (`usr/share/gocode/src/github.com/a/b/x.go`), so a stanza matches when it matches the path
    or any tail of it (`x.go`, `b/x.go`, ...)."""
    parts = path.split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    licence = None
    for stanza in found:
        if any(fnmatch.fnmatchcase(tail, pattern) for pattern in stanza.patterns for tail in tails):
            licence = stanza.licence
    return licence


def is_permissive(licence: str | None) -> bool:
    return licence is not None and spdx_is_permissive(licence)


def _fetch(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
    partial.replace(target)
