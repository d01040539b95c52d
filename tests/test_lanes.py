"""The test lanes of tests/conftest.py are well formed: every module classified, the tables naming
what exists, pyproject.toml registering the lanes, and the fast lane free of models and servers."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    COLLECTED,
    DURATIONS,
    FAST,
    FIXTURE_LANES,
    LANES,
    MODULE_LANES,
    TEST_LANES,
    lanes_of,
    slow_tests,
    starts_server,
)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
MODULES = {path.relative_to(TESTS).as_posix() for path in TESTS.rglob("test_*.py")}  # "unit/test_context.py"


@functools.cache
def functions(module: str) -> set[str]:
    """Names of the functions defined in a test module (methods included)."""
    tree = ast.parse((TESTS / module).read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_module_is_in_the_module_table():
    assert sorted(MODULES - MODULE_LANES.keys()) == [], "add these to MODULE_LANES in tests/conftest.py"
    assert sorted(MODULE_LANES.keys() - MODULES) == [], "these modules are gone: remove them from MODULE_LANES"


def test_every_single_test_and_measured_duration_names_a_test_that_exists():
    named = [key.split("::") for key in TEST_LANES]
    named += [nodeid.removeprefix("tests/").split("[")[0].split("::") for nodeid in slow_tests(DURATIONS.read_text().splitlines())]
    assert [names for names in named if names[0] not in MODULES or names[-1] not in functions(names[0])] == []


def test_the_tables_use_the_lanes_pyproject_registers():
    used = {lane for lanes in [*MODULE_LANES.values(), *TEST_LANES.values(), *FIXTURE_LANES.values()] for lane in lanes}
    assert used <= set(LANES)
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert sorted(marker.split(":")[0] for marker in markers) == sorted([*LANES, FAST])


def test_a_test_is_fast_only_in_no_other_lane_and_only_in_a_listed_module():
    assert lanes_of("unit/test_context.py", "test_x", "tests/unit/test_context.py::test_x", ["tmp_path"], set()) == {FAST}
    assert lanes_of("unit/test_context.py", "test_x", "tests/unit/test_context.py::test_x", ["tiny_models"], set()) == {"model"}
    assert lanes_of("unit/test_context.py", "test_x", "tests/unit/test_context.py::test_x[1]", [], {"tests/unit/test_context.py::test_x[1]"}) == {"slow"}
    assert lanes_of("server/test_cli.py", "test_x", "tests/server/test_cli.py::test_x", [], set()) == {"server"}
    assert lanes_of("reliability/test_security.py", "test_loopback_addresses_are_allowed", "", [], set()) == {FAST}
    assert lanes_of("test_not_listed.py", "test_x", "tests/test_not_listed.py::test_x", [], set()) == set()


def test_slow_tests_come_from_the_call_durations_over_the_threshold():
    lines = ["============ slowest durations ============", "3.38s call     tests/test_a.py::test_b[x-y]",
             "2.50s setup    tests/test_a.py::test_c", "1.99s call     tests/test_a.py::test_d", "2.00s call tests/test_a.py::test_e"]
    assert slow_tests(lines) == {"tests/test_a.py::test_b[x-y]", "tests/test_a.py::test_e"}


@pytest.mark.parametrize(("args", "server"), [
    ([sys.executable, "-m", "lsp_server"], True),
    ((sys.executable, "-I", "-m", "lsp_server", "complete", "a.py:1:1"), True),
    ([Path("/venv/bin/codet5-lsp"), "demo"], True),
    ([sys.executable, "-m", "llama_cpp.server", "--model", "m.gguf"], True),
    ([sys.executable, "-c", "import lsp_server.server"], False),
    ([sys.executable, "-m", "quantize"], False),
    ("python -m lsp_server", False),
])
def test_server_processes_are_recognized_by_their_arguments(args, server):
    assert starts_server(args) is server


def test_a_fast_test_cannot_start_the_server():
    with pytest.raises(pytest.fail.Exception, match="is in the fast lane but starts"):
        subprocess.Popen([sys.executable, "-m", "lsp_server", "--help"])


@pytest.fixture(scope="module")
def collected(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every test's node id, lanes and fixtures: this session's if it collected every module, else
    from a collection of tests/ in a child process."""
    seen = request.config.stash.get(COLLECTED, [])
    if {test["nodeid"].split("::")[0].removeprefix("tests/") for test in seen} >= MODULES:
        return seen
    report = tmp_path_factory.mktemp("lanes") / "lanes.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           f"--lanes-report={report}", str(TESTS)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads(report.read_text())


def test_every_test_is_in_a_lane(collected):
    assert [test["nodeid"] for test in collected if not test["lanes"]] == []


def test_the_fast_lane_uses_no_model_and_no_server_fixture(collected):
    fast = [test for test in collected if test["lanes"] == [FAST]]
    assert fast, "the fast lane is empty"
    assert [(test["nodeid"], sorted(set(test["fixtures"]) & FIXTURE_LANES.keys())) for test in fast
            if set(test["fixtures"]) & FIXTURE_LANES.keys()] == []
