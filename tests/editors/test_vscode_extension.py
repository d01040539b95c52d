"""The VS Code extension (editors/vscode): type check and bundle, its node tests, and the .vsix.

The node tests run the extension with the real vscode-languageclient against the real server on
the tiny model; only VS Code's API is a stand-in (VS Code itself cannot be installed here).
They need `npm ci --ignore-scripts` in editors/vscode first (CI's install step).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"
NPM = shutil.which("npm")

pytestmark = [
    pytest.mark.skipif(NPM is None, reason="npm is not installed"),
    pytest.mark.skipif(
        not (EXTENSION / "node_modules").is_dir(),
        reason="editors/vscode/node_modules is missing: run `npm ci --ignore-scripts` in editors/vscode",
    ),
]


def npm(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run `npm ARGS` in the extension's folder; fail with its output if it fails."""
    result = subprocess.run(
        [NPM, *args], cwd=EXTENSION, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"npm {' '.join(args)} exited {result.returncode}:\n{failures(output) or output[-6000:]}"
    return output


def failures(tap: str) -> str:
    """The `not ok` blocks of node's TAP output, which say what failed and why."""
    blocks = tap.split("\n# Subtest: ")
    return "\n".join(block[:3000] for block in blocks if "not ok " in block and "'subtestsFailed'" not in block)


@pytest.fixture(scope="module")
def built() -> str:
    return npm("run", "build")


def test_build_type_checks_and_bundles(built: str) -> None:
    assert "error TS" not in built
    assert (EXTENSION / "dist" / "extension.js").is_file()


def test_node_tests_against_the_real_server(built: str, tiny_models, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update({
        # The tiny T5 writes docstrings: the Generate docstring command runs for real.
        "CODET5_TEST_SERVER": json.dumps([sys.executable, "-m", "lsp_server", "--summary-model", str(tiny_models.t5_int8)]),
        "CODET5_TEST_MODEL": str(tiny_models.llama_int8),
        "CODET5_LSP_CACHE": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
    })
    output = npm("test", env=env)
    assert "# fail 0" in output and "# skipped 0" in output, output[-6000:]
    for suite in ("with the real server over stdio", "with a shared daemon over TCP", "with a daemon that needs a token",
                  "the real server, spoken to with vscode-languageserver-protocol", "daemonToken", "withToken"):
        assert f"- {suite}\n" in output, f"suite {suite!r} did not pass:\n{output[-6000:]}"


def test_vsix_package(built: str) -> None:
    npm("run", "package")
    vsix = EXTENSION / "dist" / "codet5-lsp.vsix"
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
    assert {"extension/package.json", "extension/dist/extension.js", "extension/readme.md", "extension/LICENSE.txt"} <= names
    assert not any(name.startswith(("extension/src/", "extension/node_modules/", "extension/out/")) for name in names)
    assert manifest["main"] == "./dist/extension.js"
