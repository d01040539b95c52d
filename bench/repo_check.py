"""Repository-level check: complete a line whose answer needs a name defined in another file.

Tasks come from real multi-file packages nobody here wrote (standard-library packages and packages
installed in the venv), split by package into a development set and a held-out set. A task is a
line of module A that uses a name (four characters or more) defined (a top-level `def`/`class`) in
another module B of the same package, through a module A imported (`b.name`) or as a name A
imported from B, and nowhere in A above that line but its imports: the prefix cannot supply it.
The document is A with that line typed up to the needed name and the cursor there (a user who
has typed `module.` and waits for the member). Variants, each through the server's own `CompletionPipeline`:

- ``alone``: only A is open;
- ``with-files``: B and two other modules of the package (seeded picks) are open too, most recently
  used first in a seeded order, as the server passes a session's other open documents;
- ``unrelated-files``: three other modules of the package that do not define the name are open (the
  control: what other files cost when they hold nothing the line needs).

A task of the *control* kind (``--kind control``) is a line that needs nothing from another module:
it uses a function or class its own module defines above it, and no name any import of the module
binds; typed up to that name, as above. Its ``with-files`` opens three other modules of the package
(seeded), ``unrelated-files`` three that do not define the name: what opening other files costs a
line that does not need them. The ``npm`` split has both kinds in JavaScript and TypeScript packages
(`bench.repo_js`).

Scores per variant: *name hit* (the completion starts with the needed name), exact match of the
rest of the line (whitespace-normalized), edit similarity; McNemar's exact test on the paired name hits.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import importlib.util
import io
import random
import re
import sys
import time
import tokenize
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from inference.completion.options import CompletionOptions
from inference.completion.other_files import OtherFile
from inference.completion.pipeline import CompletionPipeline, CompletionRequest, DirectWorker

from inference.syntax.languages import language_for

from . import repo_js
from .metrics import edit_similarity, exact_match, normalize_line
from .stats import mcnemar_exact, mean, wilson_interval

DEV_PACKAGES = ("asyncio", "email", "jinja2")
HELD_OUT_PACKAGES = ("multiprocessing", "importlib", "logging", "http", "xml", "unittest", "concurrent",
                     "urllib", "pygls", "cattrs", "click", "markdown_it", "networkx", "huggingface_hub")
VARIANTS = ("alone", "with-files", "unrelated-files")
KINDS = ("needs-other", "control")
DISTRACTORS = 2
MAX_MODULE_CHARS = 200_000
_USE = re.compile(r"(?<![\w.])(?:([A-Za-z_]\w*)\.)?([A-Za-z_]\w{3,})")
_IMPORT_LINE = re.compile(r"^\s*(import |from \S+ import )")
_SKIP_LINE = re.compile(r"^\s*(#|@|import |from |\"\"\"|'''|def |class |$)")
_NAME = re.compile(r"(?<![\w.])[A-Za-z_]\w*")  # a name that is no attribute


@dataclass(frozen=True)
class Task:
    package: str
    module: str  # path of A inside its package
    line: int
    target: str  # the line's text after its indentation
    typed: int  # characters of `target` typed before the cursor: up to the needed name
    needed: str  # the name defined in another module (in A itself for a control task)
    defined_in: str  # that module's path inside the package
    kind: str = "needs-other"  # or "control"


@dataclass(frozen=True)
class Attempt:
    task: Task
    variant: str
    completion: str
    name_hit: bool
    exact: bool
    similarity: float
    latency_ms: float


def package_root(name: str) -> Path | None:
    """The folder of an importable package, None if it is not installed here."""
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def modules(root: Path) -> dict[str, str]:
    """Python sources of a package by path inside it (tests and huge files left out)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if "test" in relative.lower():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if len(text) <= MAX_MODULE_CHARS:
            found[relative] = text
    return found


@functools.lru_cache(maxsize=None)
def outline(text: str) -> tuple[dict[str, int], frozenset[str]]:
    """The functions and classes (four characters or more) a module defines at its top level, by the
    line (0-based) of their `def` or `class`, and the names its imports bind anywhere in it."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}, frozenset()
    defined = {node.name: node.lineno - 1 for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and len(node.name) >= 4}
    imported = frozenset((alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
                         if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names)
    return defined, imported


def definitions(text: str) -> frozenset[str]:
    """Names of the functions and classes a module defines at its top level."""
    return frozenset(outline(text)[0])


def _definitions(path: str, text: str) -> frozenset[str]:
    """Names of the functions and classes a Python, JavaScript or TypeScript module defines at its top level."""
    return definitions(text) if path.endswith(".py") else repo_js.definitions(text)


def _lines(text: str) -> Iterable[tuple[int, int, str]]:
    """(number, indentation's width, text after it) of a module's lines that may be tasks: code, not
    a comment, decorator, import or definition line, of 8 to 100 characters."""
    for number, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not _SKIP_LINE.match(line) and 8 <= len(stripped) <= 100:
            yield number, len(line) - len(line.lstrip()), stripped


@functools.lru_cache(maxsize=None)
def code_names(text: str) -> frozenset[tuple[int, int]]:
    """(line, column), both 0-based, of the names in a module's code (those in strings and comments left out)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return frozenset()
    return frozenset((t.start[0] - 1, t.start[1]) for t in tokens if t.type == tokenize.NAME)


def _module_path(package: str, importer: str, level: int, dotted: str, sources: dict[str, str]) -> str | None:
    """The path inside the package of the module `dotted` imported from `importer` (None: outside it)."""
    if level == 0:
        head, _, dotted = dotted.partition(".")
        if head != package:
            return None
        parts: list[str] = []
    else:
        parts = importer.split("/")[:-1]
        if level > 1:
            parts = parts[: len(parts) - (level - 1)] if len(parts) >= level - 1 else []
    parts = [*parts, *(p for p in dotted.split(".") if p)]
    for candidate in ("/".join(parts) + ".py", "/".join([*parts, "__init__.py"])):
        if candidate in sources:
            return candidate
    return None


def package_bindings(package: str, path: str, text: str, sources: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Names bound in module `path` to other modules of the package, and names imported from them:
    ({alias: module path}, {name: module path})."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}, {}
    bound, imported = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            for alias in node.names:
                as_module = _module_path(package, path, node.level, f"{base}.{alias.name}", sources)
                origin = _module_path(package, path, node.level, base, sources)
                if as_module is not None and as_module != path:
                    bound[alias.asname or alias.name] = as_module
                elif origin is not None and origin != path and alias.name in definitions(sources[origin]):
                    imported[alias.asname or alias.name] = origin
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = _module_path(package, path, 0, alias.name, sources)
                if target is not None and target != path and alias.asname:
                    bound[alias.asname] = target
    return bound, imported


def package_tasks(package: str, sources: dict[str, str], per_package: int, rng: random.Random) -> list[Task]:
    """At most `per_package` tasks of one package, sampled with `rng`: lines that call for a name
    defined in another module of it (`module.name` through a module it imported, or a name it
    imported from one) which the module's text above the line (its imports aside) does not contain."""
    defined = {path: definitions(text) for path, text in sources.items()}
    candidates = []
    for path, text in sources.items():
        bound, imported = package_bindings(package, path, text, sources)
        if not bound and not imported:
            continue
        lines = text.splitlines(keepends=True)
        for number, _, stripped in _lines(text):
            before = "".join(ln for ln in lines[:number] if not _IMPORT_LINE.match(ln))
            for match in _USE.finditer(stripped):
                module, name = match.group(1), match.group(2)
                target = bound.get(module) if module else imported.get(name)
                if target is not None and name in defined[target] and name not in before:
                    candidates.append(Task(package, path, number, stripped, match.start(2), name, target))
                    break
    rng.shuffle(candidates)
    return candidates[:per_package]


def control_tasks(package: str, sources: dict[str, str], per_package: int, rng: random.Random) -> list[Task]:
    """At most `per_package` control tasks of one package, sampled with `rng`: lines that use a
    function or class their own module defines above them (in code, not in a string or comment), and
    no name an import of the module binds."""
    candidates = []
    for path, text in sources.items():
        defined, imported = outline(text)
        for number, indent, stripped in _lines(text):
            if imported.intersection(_NAME.findall(stripped)):
                continue
            for match in _USE.finditer(stripped):
                if (match.group(1) is None and defined.get(match.group(2), number) < number
                        and (number, indent + match.start(2)) in code_names(text)):
                    candidates.append(Task(package, path, number, stripped, match.start(2), match.group(2), path, "control"))
                    break
    rng.shuffle(candidates)
    return candidates[:per_package]


def npm_tasks(package: str, sources: dict[str, str], per_package: int, rng: random.Random, kind: str) -> list[Task]:
    """At most `per_package` tasks of `kind` of a JavaScript or TypeScript package, sampled with `rng`."""
    found = [Task(package, *candidate, kind=kind) for candidate in repo_js.candidates(sources, kind)]
    rng.shuffle(found)
    return found[:per_package]


def load_tasks(packages: Iterable[str], per_package: int, seed: int, kind: str = "needs-other",
               npm: bool = False) -> tuple[list[Task], dict[str, dict[str, str]]]:
    """Tasks of the given kind of the installed `packages` (`npm`: the fetched npm packages), and their sources."""
    tasks, sources = [], {}
    for package in packages:
        root = repo_js.package_root(package) if npm else package_root(package)
        if root is None:
            continue
        sources[package] = repo_js.modules(root) if npm else modules(root)
        rng = random.Random(f"{seed}:{package}")
        if npm:
            tasks += npm_tasks(package, sources[package], per_package, rng, kind)
        else:
            tasks += (control_tasks if kind == "control" else package_tasks)(package, sources[package], per_package, rng)
    return tasks, sources


def document(task: Task, text: str) -> tuple[str, int, int]:
    """A's text with the task's line typed up to the needed name, and the cursor there."""
    lines = text.splitlines(keepends=True)
    line = lines[task.line]
    typed = line[: len(line) - len(line.lstrip())] + task.target[: task.typed]
    lines[task.line] = typed + "\n"
    return "".join(lines), task.line, len(typed)


def open_files(task: Task, sources: dict[str, str], seed: int, related: bool = True) -> tuple[OtherFile, ...]:
    """The module defining the name and DISTRACTORS other modules, in a seeded order; not `related`:
    DISTRACTORS + 1 modules that do not define it. For a control task (the name is A's own) `related`
    opens DISTRACTORS + 1 other modules, any."""
    rng = random.Random(f"{seed}:{task.package}:{task.module}:{task.line}")
    others = sorted(p for p in sources if p not in (task.module, task.defined_in)
                    and (related or task.needed not in _definitions(p, sources[p])))
    with_definer = related and task.kind == "needs-other"
    picked = rng.sample(others, min(DISTRACTORS + (not with_definer), len(others)))
    picked = [task.defined_in, *picked] if with_definer else picked
    rng.shuffle(picked)
    return tuple(OtherFile(f"file:///{task.package}/{path}", sources[path]) for path in picked)


def attempt(pipeline: CompletionPipeline, worker: DirectWorker, task: Task, sources: dict[str, str],
            variant: str, options: CompletionOptions, seed: int) -> Attempt:
    """One completion of the task's line."""
    text, line, character = document(task, sources[task.module])
    others = open_files(task, sources, seed, related=variant == "with-files") if variant != "alone" else ()
    request = CompletionRequest(f"file:///{task.package}/{task.module}", text, line, character,
                                language_for(None, task.module), options, other_files=others)
    start = time.perf_counter()
    suggestion = asyncio.run(pipeline.suggest(request, worker))
    latency = (time.perf_counter() - start) * 1000
    completion = suggestion.text if suggestion is not None else ""
    first = completion.split("\n", 1)[0]
    expected = task.target[task.typed:]
    return Attempt(task, variant, completion, re.match(rf"{re.escape(task.needed)}\b", first) is not None,
                   exact_match(first, expected), edit_similarity(normalize_line(first), normalize_line(expected)),
                   round(latency, 1))


def summarize(attempts: list[Attempt]) -> dict[str, object]:
    """Name hits and exact matches with 95% Wilson intervals, mean edit similarity, median latency."""
    n = len(attempts)
    hits = sum(a.name_hit for a in attempts)
    exact = sum(a.exact for a in attempts)
    latencies = sorted(a.latency_ms for a in attempts)
    return {"tasks": n, "name_hit": hits / n if n else 0.0, "name_hit_ci": wilson_interval(hits, n),
            "exact": exact / n if n else 0.0, "exact_ci": wilson_interval(exact, n),
            "similarity": mean([a.similarity for a in attempts]) if n else 0.0,
            "latency_ms_median": latencies[n // 2] if n else 0.0}


def run(model, split: str, per_package: int, seed: int, options: CompletionOptions,
        limit: int | None = None, variants: tuple[str, ...] = VARIANTS, kind: str = "needs-other") -> dict[str, object]:
    """The variants on the split's tasks of `kind`, paired, interleaved task by task."""
    packages = {"dev": DEV_PACKAGES, "held-out": HELD_OUT_PACKAGES, "npm": repo_js.NPM_PACKAGES}[split]
    tasks, sources = load_tasks(packages, per_package, seed, kind, npm=split == "npm")
    tasks = tasks[:limit] if limit else tasks
    worker = DirectWorker(model)
    by_variant: dict[str, list[Attempt]] = {v: [] for v in variants}
    for number, task in enumerate(tasks, 1):
        for variant in variants:
            pipeline = CompletionPipeline(None)
            by_variant[variant].append(attempt(pipeline, worker, task, sources[task.package], variant,
                                               replace(options, debounce_ms=0), seed))
        if number % 10 == 0:
            print(f"bench: repo check {split} {kind}: {number}/{len(tasks)} "
                  + ", ".join(f"{v} {sum(a.name_hit for a in by_variant[v])}" for v in variants),
                  file=sys.stderr, flush=True)
    versus = {}
    for variant in (v for v in variants if v != "alone" and "alone" in by_variant):
        pairs = list(zip(by_variant["alone"], by_variant[variant]))
        only_alone = sum(a.name_hit and not b.name_hit for a, b in pairs)
        only_variant = sum(b.name_hit and not a.name_hit for a, b in pairs)
        versus[variant] = {"only_alone": only_alone, "only_this": only_variant,
                           "mcnemar_p": mcnemar_exact(only_alone, only_variant)}
    return {
        "split": split, "kind": kind, "seed": seed, "per_package": per_package,
        "packages": sorted({t.package for t in tasks}),
        "variants": {v: summarize(a) for v, a in by_variant.items()},
        "name_hits_versus_alone": versus,
        "attempts": [asdict(a) for v in variants for a in by_variant[v]],
    }
