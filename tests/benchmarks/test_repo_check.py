"""The repository-level check's tasks: a line that needs a name another module of the package
defines, typed up to that name; names the module's own text above the line gives away are not tasks.
Control tasks: a line that uses a name its own module defines above it and nothing any import binds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.repo_check import document, load_tasks, modules, open_files, package_bindings, package_tasks

SOURCES = {
    "helpers.py": "def compute_total(items):\n    return sum(items)\n\n\nclass Ledger:\n    pass\n",
    "report.py": (
        "from . import helpers\n"
        "from .helpers import Ledger\n\n\n"
        "def show(items):\n"
        "    total = helpers.compute_total(items)\n"
        "    book = Ledger()\n"
        "    again = helpers.compute_total(items)\n"
        "    return total, book, again\n"
    ),
    "other.py": "def unrelated():\n    return 1\n",
    "sub/deep.py": "from .. import helpers\n\n\nvalue = helpers.compute_total([1])\n",
}


def test_bindings_follow_relative_and_absolute_imports_inside_the_package() -> None:
    assert package_bindings("pkg", "report.py", SOURCES["report.py"], SOURCES) == (
        {"helpers": "helpers.py"}, {"Ledger": "helpers.py"})
    assert package_bindings("pkg", "sub/deep.py", SOURCES["sub/deep.py"], SOURCES)[0] == {"helpers": "helpers.py"}
    assert package_bindings("pkg", "x.py", "from pkg import helpers\nimport os\n", SOURCES)[0] == {"helpers": "helpers.py"}


def test_tasks_are_the_first_uses_of_names_from_other_modules() -> None:
    tasks = package_tasks("pkg", SOURCES, 10, random.Random(0))
    found = sorted((t.module, t.line, t.needed) for t in tasks)
    # line 7 uses compute_total again: the line above already shows it, so it is no task
    assert found == [("report.py", 5, "compute_total"), ("report.py", 6, "Ledger"), ("sub/deep.py", 3, "compute_total")]
    task = next(t for t in tasks if t.line == 5)
    text, line, character = document(task, SOURCES["report.py"])
    assert text.splitlines()[line] == "    total = helpers." and character == len("    total = helpers.")
    assert task.target[task.typed:] == "compute_total(items)"
    opened = open_files(task, SOURCES, 13)
    assert "file:///pkg/helpers.py" in {f.uri for f in opened} and "file:///pkg/report.py" not in {f.uri for f in opened}
    unrelated = {f.uri for f in open_files(task, SOURCES, 13, related=False)}
    assert unrelated == {"file:///pkg/other.py", "file:///pkg/sub/deep.py"}  # all that do not define compute_total


TALLY = (
    "import os\n"
    "from .helpers import compute_total\n\n\n"
    "def first():\n"
    "    return running_sum([1, 2])\n\n\n"  # above running_sum's definition: no task
    "def running_sum(values):\n"
    "    total = 0\n"
    "    for value in values:\n"
    "        total += value\n"
    "    return total\n\n\n"
    "class Counter:\n"
    "    def count(self, values):\n"
    '        """Count the values.\n\n'
    '        Adds them with running_sum(values) first.\n'  # in a docstring: no task
    '        """\n'
    "        self.total = running_sum(values)\n"  # the task of this line
    "        self.size = self.running_sum(values)\n"  # an attribute, not the module's function
    "        where = os.path.join(running_sum(values))\n"  # also uses an imported module
    "        both = compute_total(values) + running_sum(values)\n"  # also uses an imported name
    "        copy = Counter()\n"  # the task of this line
    "        return copy\n"
)


@pytest.fixture
def control_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ctlpkg"
    files = {"__init__.py": "", "tally.py": TALLY, "helpers.py": SOURCES["helpers.py"], "other.py": SOURCES["other.py"],
             "more.py": "def running_sum(xs):\n    return xs\n", "tests/test_tally.py": "def check():\n    return check_all(1)\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return root


def test_control_tasks_use_only_names_their_module_defines_above_them(control_package: Path) -> None:
    sources = modules(control_package)
    assert "tests/test_tally.py" not in sources
    tasks, loaded = load_tasks(["ctlpkg"], 10, 13, kind="control")
    assert loaded == {"ctlpkg": sources}
    found = sorted((t.module, t.line, t.needed, t.target[:t.typed], t.kind, t.defined_in) for t in tasks)
    assert found == [("tally.py", 21, "running_sum", "self.total = ", "control", "tally.py"),
                     ("tally.py", 25, "Counter", "copy = ", "control", "tally.py")]
    assert load_tasks(["ctlpkg"], 1, 13, kind="control")[0][0] in tasks  # a seeded sample of them
    needs_other = load_tasks(["ctlpkg"], 10, 13)[0]  # the default kind: the line that needs helpers.py
    assert [(t.line, t.needed, t.defined_in, t.kind) for t in needs_other] == [(24, "compute_total", "helpers.py", "needs-other")]


def test_control_tasks_open_as_many_other_modules(control_package: Path) -> None:
    sources = modules(control_package)
    task = next(t for t in load_tasks(["ctlpkg"], 10, 13, kind="control")[0] if t.needed == "running_sum")
    text, line, character = document(task, sources["tally.py"])
    assert text.splitlines()[line] == "        self.total = " and character == len("        self.total = ")
    opened = {f.uri for f in open_files(task, sources, 13)}
    assert len(opened) == 3 and "file:///ctlpkg/tally.py" not in opened
    unrelated = {f.uri for f in open_files(task, sources, 13, related=False)}
    assert unrelated == {"file:///ctlpkg/__init__.py", "file:///ctlpkg/helpers.py", "file:///ctlpkg/other.py"}
