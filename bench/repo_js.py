"""JavaScript and TypeScript tasks for the repository-level check (`python -m bench repo --split npm`).

The packages are real multi-file npm packages with MIT licences (ws and undici: CommonJS; axios:
ES modules; ajv: TypeScript sources), their published files fetched into build/npm (never
committed) from the npm registry, from the repository root:

    mkdir -p build/npm && cd build/npm && for p in ws@8.23.1 undici@6.29.1 axios@1.21.1 ajv@8.20.0; do
        mkdir -p "${p%@*}" && tar xzf "$(npm pack --silent "$p")" -C "${p%@*}" --strip-components=1; done

A module A binds a sibling module B (`import b from './b'`, `import * as b from './b'`,
`const b = require('./b')`) or names from it (`import {x} from './b'`, `const {x} = require('./b')`;
a default import is also the name B defines by it); B defines a name with a top-level `function`
or `class`, exported or not. Tasks are as for Python (`bench.repo_check`): the first use of such a
name in A (`b.x` or `x`) that A's text above, its imports aside, does not contain; control tasks use
a function or class A defines above the line and no name any import binds.
"""

from __future__ import annotations

import bisect
import functools
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inference.completion.scan import scan

NPM_PACKAGES = ("ws", "undici", "axios", "ajv")
NPM_ROOT = Path(__file__).resolve().parent.parent / "build" / "npm"
EXTENSIONS = (".js", ".mjs", ".cjs", ".ts")
MAX_MODULE_CHARS = 200_000
_LEFT_OUT = re.compile(r"(^|/)(dist|node_modules|scripts|types)/|\.d\.ts$|\.min\.js$|test")
_DEFINITION = re.compile(r"^(?:export\s+(?:default\s+)?)?(?:async\s+)?(?:function\s*\*?\s*|class\s+)([A-Za-z_$][\w$]{3,})", re.M)
_ESM = re.compile(  # groups: namespace, default, {names}, module
    r"^import\s+(?:type\s+)?(?:\*\s+as\s+([\w$]+)|([\w$]+))?\s*,?\s*(?:\{([^}]*)\})?\s*from\s*['\"]([^'\"]+)['\"]", re.M)
_CJS = re.compile(  # groups: name, {names}, module
    r"^(?:const|let|var)\s+(?:([\w$]+)|\{([^}]*)\})\s*=\s*require\(\s*['\"]([^'\"]+)['\"]\s*\)", re.M)
_USE = re.compile(r"(?<![\w.$])(?:([A-Za-z_$][\w$]*)\.)?([A-Za-z_$][\w$]{3,})")
_NAME = re.compile(r"(?<![\w.$])[A-Za-z_$][\w$]*")
_SKIP_LINE = re.compile(r"^\s*(//|/\*|\*|export\s+[{*]|(export\s+)?(default\s+)?(async\s+)?(function|class)\b|$)")


@dataclass(frozen=True)
class Imports:
    """What a module's imports bind."""

    modules: dict[str, str]  # name: the sibling module's path it stands for
    names: dict[str, str]  # name: the sibling module's path it comes from
    bound: frozenset[str]  # every name any import binds (siblings, packages, Node's modules)
    lines: frozenset[int]  # the lines of the import statements


def package_root(name: str) -> Path | None:
    """The folder of a fetched npm package, None if it is not in NPM_ROOT."""
    root = NPM_ROOT / name
    return root if (root / "package.json").is_file() else None


def modules(root: Path) -> dict[str, str]:
    """JavaScript and TypeScript sources of a package by path inside it (builds, tests, type
    declarations and huge files left out)."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in EXTENSIONS and p.is_file()):
        relative = path.relative_to(root).as_posix()
        if not _LEFT_OUT.search(relative.lower()):
            text = path.read_text(encoding="utf-8", errors="replace")
            if len(text) <= MAX_MODULE_CHARS:
                found[relative] = "\n".join(text.splitlines()) + "\n"  # one kind of line break
    return found


@functools.lru_cache(maxsize=None)
def definition_lines(text: str) -> dict[str, int]:
    """The functions and classes (four characters or more) a module defines at its top level, by the
    line (0-based) that defines them."""
    return {m.group(1): text.count("\n", 0, m.start()) for m in _DEFINITION.finditer(text)}


def definitions(text: str) -> frozenset[str]:
    """Names of the functions and classes a module defines at its top level."""
    return frozenset(definition_lines(text))


def resolve(importer: str, spec: str, sources: dict[str, str]) -> str | None:
    """The path inside the package of the module `spec` that `importer` imports (None: not a sibling)."""
    if not spec.startswith("."):
        return None
    base = posixpath.normpath(posixpath.join(posixpath.dirname(importer), spec))
    stem = base[:-3] if base.endswith(".js") else base  # TypeScript imports `./b.js` for b.ts
    for candidate in (base, stem + ".ts", *(base + e for e in EXTENSIONS), *(f"{base}/index{e}" for e in EXTENSIONS)):
        if candidate in sources:
            return candidate
    return None


def _listed(names: str | None) -> list[str]:
    """The names an import's `{...}` binds (`a as b` and `a: b` bind b; `type a` binds a)."""
    found = []
    for part in (names or "").split(","):
        name = re.split(r"\s+as\s+|:", part.strip())[-1].strip()
        name = name.removeprefix("type ").strip()
        if re.fullmatch(r"[A-Za-z_$][\w$]*", name):
            found.append(name)
    return found


def imports(path: str, text: str, sources: dict[str, str]) -> Imports:
    """What the imports of module `path` bind, and where."""
    siblings, names, bound, lines = {}, {}, set(), set()
    statements = [(m, m.group(1) or m.group(2), m.group(1) is not None, m.group(3), m.group(4)) for m in _ESM.finditer(text)]
    statements += [(m, m.group(1), False, m.group(2), m.group(3)) for m in _CJS.finditer(text)]
    for match, whole, namespace, listing, spec in statements:
        first = text.count("\n", 0, match.start())
        lines.update(range(first, first + match.group(0).count("\n") + 1))
        bound.update([whole] if whole else [], _listed(listing))
        target = resolve(path, spec, sources)
        if target is None or target == path:
            continue
        if whole:
            siblings[whole] = target
        for name in ([whole] if whole and not namespace else []) + _listed(listing):
            names[name] = target
    return Imports(siblings, names, frozenset(bound), frozenset(lines))


def _in_code(text: str) -> Callable[[int], bool]:
    """A test of whether an offset of `text` is code (not in a string or comment)."""
    spans = sorted((t.pos, t.end) for t in scan(text) if t.kind in ("string", "unclosed", "comment"))
    starts = [s for s, _ in spans]

    def check(offset: int) -> bool:
        i = bisect.bisect_right(starts, offset) - 1
        return i < 0 or offset > spans[i][1]

    return check


def candidates(sources: dict[str, str], kind: str) -> list[tuple[str, int, str, int, str, str]]:
    """(module, line, text after the indentation, characters typed, needed name, module defining it)
    of every task of `kind` ("needs-other" or "control") in a package's sources."""
    found = []
    for path, text in sources.items():
        bindings = imports(path, text, sources)
        own = definition_lines(text)
        if kind != "control" and not bindings.modules and not bindings.names:
            continue
        lines = text.split("\n")
        offsets = [0]
        for line in lines[:-1]:
            offsets.append(offsets[-1] + len(line) + 1)
        in_code = _in_code(text)
        for number, line in enumerate(lines):
            stripped = line.strip()
            if number in bindings.lines or _SKIP_LINE.match(line) or not 8 <= len(stripped) <= 100:
                continue
            if kind == "control" and bindings.bound.intersection(_NAME.findall(stripped)):
                continue
            indent = len(line) - len(line.lstrip())
            for match in _USE.finditer(stripped):
                module, name = match.groups()
                if kind == "control":
                    target = path if module is None and own.get(name, number) < number else None
                else:
                    target = bindings.modules.get(module) if module else bindings.names.get(name)
                if target is None or name not in definitions(sources[target]) or not in_code(offsets[number] + indent + match.start(2)):
                    continue
                if kind != "control" and name in "\n".join(ln for i, ln in enumerate(lines[:number]) if i not in bindings.lines):
                    continue
                found.append((path, number, stripped, match.start(2), name, target))
                break
    return found
