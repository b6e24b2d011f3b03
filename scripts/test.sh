#!/usr/bin/env bash
# Runs every Parlor test. Installs what the tests need first (idempotent): Chromium from
# Debian for the browser tests, playwright-core from npm, Postgres (started if down), and
# an S3 server from PyPI for the attachment store's S3 backend.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium chromium-driver)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v pip3 >/dev/null || command -v moto_server >/dev/null || need_apt+=(python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${need_apt[@]}"
fi

# The S3-compatible attachment store is tested against moto's S3 server.
if ! command -v moto_server >/dev/null; then
  echo "==> installing moto[server]"
  pip3 install -q 'moto[server]' || pip3 install -q --break-system-packages 'moto[server]'
  hash -r
fi

# The chat store's tests run on both SQLite and the Postgres at 127.0.0.1:5432 (database
# `test`, trust auth). Start it if it is down; install it if the machine has none.
ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_isready -h 127.0.0.1 -p 5432 -q; then return; fi
  if ! ls -d /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "==> installing postgresql"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q postgresql
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      $SUDO sed -i -E 's/^(host[[:space:]].*)(scram-sha-256|md5)$/\1trust/' "$hba"
    done
  fi
  echo "==> starting postgresql"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 1
  done
  pg_isready -h 127.0.0.1 -p 5432
}
ensure_postgres
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname = 'test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -c "create database test"
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "==> cargo test (unit and integration tests)"
cargo test --locked --workspace

echo "==> the media integration tests again, with every SFU call and event through JSON"
PARLOR_TEST_SEAM=json cargo test --locked --test rooms --test whip --test bad_input

echo "==> browser tests (headless Chromium)"
cargo build --locked --bin parlor
(
  cd tests/browser
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
  echo "==> tsc --noEmit over web/"
  npm run --silent typecheck
  PARLOR_BIN="$(pwd)/../../target/debug/parlor" node --test
)
echo "==> all tests passed"
