#!/usr/bin/env bash
# Runs every Parlor test. Installs what the tests need first (idempotent):
# Chromium from Debian for the browser tests, and playwright-core from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium chromium-driver)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${need_apt[@]}"
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "==> cargo test (unit and integration tests)"
cargo test --locked --workspace

echo "==> browser tests (headless Chromium)"
cargo build --locked --bin parlor
(
  cd tests/browser
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
  PARLOR_BIN="$(pwd)/../../target/debug/parlor" node --test
)
echo "==> all tests passed"
