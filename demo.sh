#!/usr/bin/env bash
# Set up codet5-lsp in ./.venv, build the embedded default model, and drive the server like an editor.
# Extra arguments go to `codet5-lsp demo` (e.g. --model codet5p-220m).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/codet5-lsp models pull default
.venv/bin/codet5-lsp models pull default-summarizer
if command -v npm >/dev/null; then   # the VS Code extension's toolchain, for its tests and packaging
  (cd editors/vscode && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
fi
exec .venv/bin/codet5-lsp demo "$@"
