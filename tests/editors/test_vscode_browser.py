"""The VS Code extension's .vsix in real VS Code (code-server) in a real browser (Debian's chromium).

editors/vscode/browser-test/setup.sh installs the toolchain (.ci/run runs it); without it the
test skips with the reason. The test packages the .vsix with the extension's own script, installs
it into a fresh code-server whose user settings start this checkout's server on the tiny models,
and editors/vscode/browser-test/drive.mjs acts as a user in chromium: it opens a Python file of a
workspace, types, reads the ghost text, accepts it with Tab, reads the status bar item and runs
"codet5: Generate docstring". The ghost text must be what `codet5-lsp complete` answers for the
same document and position. Set CODET5_BROWSER_SCREENSHOT to a path to keep the screenshot of
the ghost text (docs/vscode-ghost-text.png is one).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "editors" / "vscode"
BROWSER_TEST = EXTENSION / "browser-test"
CODE_SERVER = BROWSER_TEST / "node_modules" / "code-server" / "out" / "node" / "entry.js"
READY_MARKER = BROWSER_TEST / "node_modules" / ".codet5-browser-test-ready"
SETUP_FAILURE = BROWSER_TEST / "setup-failure.txt"
SERVER = Path(sys.executable).with_name("codet5-lsp")
CHROMIUM = shutil.which("chromium")
NPM = shutil.which("npm")
NODE = shutil.which("node")

DOCUMENT = 'def add(a, b):\n    return a + b\n\n\ndef greet(name):\n    '
TYPED = "return "
DOCSTRING_UNDER_ADD = re.compile(r'\Adef add\(a, b\):\n    """[^\n"][\s\S]*?"""\n    return a \+ b\n')
DRIVE_TIMEOUT_S = 300
START_TIMEOUT_S = 60


def toolchain_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if NODE is None or NPM is None:
        return "node or npm is not installed"
    if CHROMIUM is None:
        return "chromium is not installed: run editors/vscode/browser-test/setup.sh"
    if not (EXTENSION / "node_modules").is_dir():
        return "editors/vscode/node_modules is missing: run `npm ci --ignore-scripts` in editors/vscode"
    if not READY_MARKER.is_file() or not CODE_SERVER.is_file():
        failure = SETUP_FAILURE.read_text(encoding="utf-8").strip() if SETUP_FAILURE.is_file() else ""
        return f"code-server is not installed: {failure or 'run editors/vscode/browser-test/setup.sh'}"
    return None


pytestmark = pytest.mark.skipif(toolchain_missing() is not None, reason=str(toolchain_missing()))


def server_args(tiny_models) -> list[str]:
    return ["--model", str(tiny_models.llama_int8), "--summary-model", str(tiny_models.t5_int8), "--offline", "--threads", "1"]


def environment(tmp_path: Path) -> dict[str, str]:
    """The server's caches, and code-server's data and config folders, all under tmp_path."""
    env = dict(os.environ)
    env.update({"CODET5_LSP_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
                "XDG_DATA_HOME": str(tmp_path / "xdg-data"), "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")})
    return env


def stop_group(process: subprocess.Popen) -> None:
    """Ends the process and everything it started (its own process group): SIGTERM, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            process.poll()  # reaps the leader: a zombie would keep the group alive
            os.killpg(process.pid, 0)  # ProcessLookupError once the whole group is gone
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def vsix(tmp_path: Path) -> Path:
    """The .vsix, built by the extension's own packaging script."""
    result = subprocess.run([NPM, "run", "package"], cwd=EXTENSION, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"npm run package failed:\n{(result.stdout + result.stderr)[-6000:]}"
    return Path(shutil.copy(EXTENSION / "dist" / "codet5-lsp.vsix", tmp_path / "codet5-lsp.vsix"))


@pytest.fixture
def code_server(tmp_path: Path, vsix: Path, tiny_models) -> Iterator[tuple[str, Path]]:
    """A code-server with the .vsix installed and user settings that start the tiny-model server.

    Yields its address and its log file.
    """
    user_data, extensions = tmp_path / "ud", tmp_path / "ext"
    (user_data / "User").mkdir(parents=True)
    settings = {
        "security.workspace.trust.enabled": False,
        "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
        "editor.wordBasedSuggestions": "off",
        "editor.suggestOnTriggerCharacters": False,
        "workbench.startupEditor": "none",
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "codet5.server.path": str(SERVER),
        # -v: the server's debug log (each request, each reason for no suggestion) goes to the extension's log.
        "codet5.server.args": [*server_args(tiny_models), "-v"],
    }
    (user_data / "User" / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    config = tmp_path / "code-server.yaml"
    config.write_text("bind-addr: 127.0.0.1:0\nauth: none\ncert: false\n", encoding="utf-8")
    base = [NODE, str(CODE_SERVER), "--config", str(config), "--user-data-dir", str(user_data),
            "--extensions-dir", str(extensions)]
    installed = subprocess.run([*base, "--install-extension", str(vsix)], capture_output=True, text=True,
                               timeout=120, stdin=subprocess.DEVNULL, env=environment(tmp_path))
    assert "was successfully installed" in installed.stdout, installed.stdout + installed.stderr

    log = tmp_path / "code-server.log"
    with log.open("w") as out:
        process = subprocess.Popen([*base, "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust"],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=environment(tmp_path), start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (match := re.search(r"HTTP server listening on (http://127\.0\.0\.1:\d+)/", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, f"code-server did not start:\n{log.read_text()}"
            time.sleep(0.2)
        yield match.group(1), log
    finally:
        stop_group(process)


def expected_completion(tmp_path: Path, tiny_models, text: str) -> str:
    """What the server suggests at the end of `text`, asked through `codet5-lsp complete`."""
    path = tmp_path / "expected.py"
    path.write_text(text, encoding="utf-8")
    line, column = text.count("\n") + 1, len(text.rsplit("\n", 1)[-1]) + 1
    result = subprocess.run([str(SERVER), "complete", f"{path}:{line}:{column}", *server_args(tiny_models)],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=environment(tmp_path))
    assert result.returncode == 0, result.stderr
    return result.stdout.removesuffix("\n")


def drive(tmp_path: Path, url: str, workspace: Path) -> dict:
    """Runs drive.mjs against code-server; returns what it saw."""
    plan = {
        "url": f"{url}/?folder={workspace}",
        "chromium": CHROMIUM,
        "browserProfile": str(tmp_path / "chromium-profile"),
        "file": "example.py",
        "openedPattern": "def greet",
        "type": TYPED,
        "docstringCommand": "codet5: Generate docstring",
        "screenshot": str(tmp_path / "ghost-text.png"),
        "failureScreenshot": str(tmp_path / "failure.png"),
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    process = subprocess.Popen([NODE, str(BROWSER_TEST / "drive.mjs"), str(tmp_path / "plan.json")], cwd=BROWSER_TEST,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=DRIVE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_group(process)
        stdout, stderr = process.communicate()
    stop_group(process)  # a browser drive.mjs left behind
    lines = stdout.strip().splitlines()
    assert process.returncode == 0 and lines, f"drive.mjs exited {process.returncode}:\n{stderr[-6000:]}"
    return {**json.loads(lines[-1]), "log": stderr}


def test_the_vsix_in_vscode_in_a_browser(tmp_path: Path, tiny_models, code_server: tuple[str, Path]) -> None:
    url, log = code_server
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    source = workspace / "example.py"
    source.write_text(DOCUMENT, encoding="utf-8")
    expected = expected_completion(tmp_path, tiny_models, DOCUMENT + TYPED)
    assert expected.strip(), "the tiny model suggests nothing here: the test would prove nothing"

    seen = drive(tmp_path, url, workspace)
    extension_log = "".join(path.read_text() for path in (tmp_path / "ud" / "logs").glob("*/exthost*/*/codet5-lsp.log"))
    context = (f"\ndrive.mjs log:\n{seen['log'][-3000:]}\ncode-server log:\n{log.read_text()[-3000:]}"
               f"\nthe extension's log:\n{extension_log[-6000:]}")
    assert "error" not in seen, f"{seen['error']}\nnotifications: {seen.get('notifications')}\nscreenshot: {tmp_path / 'failure.png'}{context}"
    if target := os.environ.get("CODET5_BROWSER_SCREENSHOT"):
        shutil.copy(tmp_path / "ghost-text.png", target)

    # The status bar item shows the model state: ready, with the tiny model's name.
    assert seen["status"]["text"] == "codet5" and "codicon-check" in seen["status"]["icons"], seen["status"]
    assert "ready" in seen["tooltip"].lower() and tiny_models.llama_int8.name in seen["tooltip"], seen["tooltip"]
    # The ghost text is the server's suggestion for this document and position.
    assert seen["typed"] == DOCUMENT + TYPED, seen["typed"]
    assert seen["ghost"] == expected, (seen["ghost"], expected)
    # Tab puts it into the editor.
    assert seen["accepted"] == DOCUMENT + TYPED + expected, seen["accepted"]
    # "Generate docstring" on `def add` writes a docstring under it; Ctrl+S saved what the editor shows.
    saved = source.read_text(encoding="utf-8")
    assert saved == seen["documented"], (saved, seen["documented"])
    assert DOCSTRING_UNDER_ADD.match(saved), saved
    assert saved.endswith(TYPED + expected), saved
