#!/usr/bin/env bash
# Installs the toolchain of tests/test_vscode_browser.py: Debian's chromium and ripgrep (plus the
# headers code-server's native modules build against), then code-server (real VS Code) and
# puppeteer-core from npm into ./node_modules (ignored by git). No install step downloads a
# binary: npm's install scripts are skipped, the native modules are rebuilt from source and
# @vscode/ripgrep gets Debian's rg. Idempotent: a marker makes a rerun take a second.
# On failure, setup-failure.txt says which step failed; the test skips with that reason.
set -euo pipefail
cd "$(dirname "$0")"
FAILURE=setup-failure.txt
MARKER=node_modules/.codet5-browser-test-ready
APT_PACKAGES=(chromium ripgrep g++ make pkg-config libkrb5-dev libxkbfile-dev libsecret-1-dev)

step() { printf '==> browser-test setup: %s\n' "$*" >&2; }
fail() { echo "editors/vscode/browser-test/setup.sh failed: $*" | tee "$FAILURE" >&2; exit 1; }
trap 'fail "exit $? at line $LINENO: $BASH_COMMAND"' ERR
rm -f "$FAILURE"

stamp="$(cat package-lock.json setup.sh | sha256sum | cut -c1-16) node $(node --version 2>/dev/null || echo none)"
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$stamp" ]; then
  step "already installed ($MARKER)"
  exit 0
fi

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing Debian packages (install them as root): ${missing[*]}"
  step "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v npm >/dev/null || fail "npm is not installed"

npm_quiet=(--no-audit --no-fund --loglevel=error)
step "npm ci: code-server, puppeteer-core (no install scripts)"
npm ci --ignore-scripts "${npm_quiet[@]}"
rm -f "$MARKER"
step "npm rebuild argon2 (code-server's native module, from source)"
npm rebuild argon2 "${npm_quiet[@]}" >/dev/null

# What code-server's own postinstall does, without its downloads.
vscode=node_modules/code-server/lib/vscode
step "VS Code's dependencies (no install scripts)"
(cd "$vscode" && npm install --omit=dev --ignore-scripts "${npm_quiet[@]}")
mkdir -p "$vscode/node_modules/@vscode/ripgrep/bin"
cp "$(command -v rg)" "$vscode/node_modules/@vscode/ripgrep/bin/rg"
step "VS Code's native modules (kerberos, node-pty, spdlog, native-watchdog), from source: about a minute"
(cd "$vscode" && npm_config_yes=true npm rebuild "${npm_quiet[@]}" >/dev/null)
ln -sfn node_modules "$vscode/node_modules.asar"
ln -sfn code-linux.sh "$vscode/bin/remote-cli/code-server"
ln -sfn browser-linux.sh "$vscode/bin/helpers/browser.sh"
step "the built-in extensions' shared dependencies"
(cd "$vscode/extensions" && npm install --omit=dev "${npm_quiet[@]}" >/dev/null)

node node_modules/code-server/out/node/entry.js --config /dev/null --version >/dev/null
echo "$stamp" >"$MARKER"
step "done"
