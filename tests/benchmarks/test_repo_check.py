"""The repository-level check's tasks: a line that needs a name another module of the package
defines, typed up to that name; names the module's own text above the line gives away are not tasks.
Control tasks: a line that uses a name its own module defines above it and nothing any import binds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench import repo_js
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


NPM_FILES = {
    "package.json": "{}\n",
    "lib/util.js": "'use strict'\nfunction isStream (obj) {\n  return obj && typeof obj.pipe === 'function'\n}\n"
                   "function destroy (obj) {}\nclass Queue {}\nmodule.exports = { isStream, destroy, Queue }\n",
    "lib/client.js": (
        "'use strict'\n"
        "const util = require('./util')\n"
        "const {\n  Queue\n} = require('./util')\n"
        "const net = require('net')\n\n"
        "function connect (socket) {\n"
        "  // util.destroy(socket) in a comment: no task\n"
        "  if (util.isStream(socket)) {\n"
        "    return new Queue()\n"
        "  }\n"
        "  const again = util.isStream(socket)\n"
        "  return connect(net.createConnection(socket))\n"
        "}\n"
        "const retry = connect(null)\n"
        "module.exports = connect\n"
    ),
    "src/b.ts": "export function makeCode(x: string): string {\n  return x\n}\nexport class Emitter {}\n",
    "src/a.ts": (
        'import {\n  makeCode,\n} from "./b.js"\n'
        'import * as b from "./b"\n\n'
        "export function run(): string {\n"
        '  const log = "b.Emitter in a string: no task"\n'
        '  return makeCode("x")\n'
        "}\n"
    ),
    "dist/bundle.js": "function isStream() {}\n",
    "lib/util.d.ts": "export declare function isStream(obj: unknown): boolean\n",
    "test/client.test.js": "const util = require('../lib/util')\n",
}


@pytest.fixture
def npm_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, text in NPM_FILES.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    monkeypatch.setattr(repo_js, "NPM_ROOT", tmp_path)
    return repo_js.modules(tmp_path / "pkg")


def _line(path: str, fragment: str) -> int:
    return next(n for n, line in enumerate(NPM_FILES[path].splitlines()) if fragment in line)


def test_js_imports_bind_sibling_modules_and_their_names(npm_package: dict[str, str]) -> None:
    assert sorted(npm_package) == ["lib/client.js", "lib/util.js", "src/a.ts", "src/b.ts"]
    client = repo_js.imports("lib/client.js", npm_package["lib/client.js"], npm_package)
    assert client.modules == {"util": "lib/util.js"}
    assert client.names == {"util": "lib/util.js", "Queue": "lib/util.js"}
    assert client.bound == {"util", "Queue", "net"} and client.lines == {1, 2, 3, 4, 5}
    typescript = repo_js.imports("src/a.ts", npm_package["src/a.ts"], npm_package)
    assert typescript.modules == {"b": "src/b.ts"} and typescript.names == {"makeCode": "src/b.ts"}


def test_js_tasks_of_both_kinds(npm_package: dict[str, str]) -> None:
    tasks, sources = load_tasks(["pkg", "absent"], 10, 13, npm=True)
    assert sources == {"pkg": npm_package}
    assert sorted((t.module, t.line, t.target[:t.typed], t.needed, t.defined_in) for t in tasks) == [
        ("lib/client.js", _line("lib/client.js", "if (util"), "if (util.", "isStream", "lib/util.js"),
        ("lib/client.js", _line("lib/client.js", "new Queue"), "return new ", "Queue", "lib/util.js"),
        ("src/a.ts", _line("src/a.ts", "return makeCode"), "return ", "makeCode", "src/b.ts"),
    ]  # not in comments or strings, nor where the text above already uses the name
    control = load_tasks(["pkg"], 10, 13, kind="control", npm=True)[0]
    assert sorted((t.module, t.line, t.needed, t.defined_in) for t in control) == [
        ("lib/client.js", _line("lib/client.js", "const retry"), "connect", "lib/client.js"),  # not the line using `net`
        ("lib/client.js", _line("lib/client.js", "module.exports"), "connect", "lib/client.js"),
        ("lib/util.js", _line("lib/util.js", "module.exports"), "isStream", "lib/util.js")]
    task = next(t for t in tasks if t.needed == "makeCode")
    unrelated = {f.uri for f in open_files(task, sources["pkg"], 13, related=False)}
    assert unrelated == {"file:///pkg/lib/client.js", "file:///pkg/lib/util.js"}  # b.ts defines makeCode
