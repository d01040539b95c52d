"""The repository-level check's tasks: a line that needs a name another module of the package
defines, typed up to that name; names the module's own text above the line gives away are not tasks."""

from __future__ import annotations

import random

from bench.repo_check import document, open_files, package_bindings, package_tasks

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
