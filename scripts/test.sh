#!/usr/bin/env bash
# Runs every Parlor test. Installs what the tests need first (idempotent): Chromium from
# Debian for the browser tests, promtool (Debian's prometheus), playwright-core from npm,
# Postgres, Redis and NATS (started if down), and an S3 server from PyPI for the
# attachment store's S3 backend.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
# A CI build is cold and built once: incremental state would only take disk (about 3 GB).
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
echo "==> disk free where the build goes: $(df -h . | awk 'NR == 2 { print $4 }')"
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium chromium-driver)
# Korean and emoji in the browser tests' screenshots (target/e2e-screenshots/).
[ -d /usr/share/fonts/opentype/noto ] || need_apt+=(fonts-noto-cjk)
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need_apt+=(fonts-noto-color-emoji)
# promtool, for the alert rules' checks and unit tests and the metrics lint.
command -v promtool >/dev/null || need_apt+=(prometheus)
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

# Password resets are tested against a real SMTP server (aiosmtpd), and sign-in with
# OpenID Connect against a real provider (oidc-provider-mock), both from PyPI.
for pkg in aiosmtpd:aiosmtpd oidc_provider_mock:oidc-provider-mock; do
  if ! python3 -c "import ${pkg%%:*}" 2>/dev/null; then
    echo "==> installing ${pkg##*:}"
    pip3 install -q "${pkg##*:}" || pip3 install -q --break-system-packages "${pkg##*:}"
  fi
done

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

# The cluster tests run SFU and signaling processes against the real Redis (127.0.0.1:6379)
# and NATS (127.0.0.1:4222). Start each if it is down; install it if the machine has none.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 30); do port_open "$1" && return 0; sleep 0.5; done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}
ensure_redis() {
  port_open 6379 && return
  command -v redis-server >/dev/null || { $SUDO apt-get update -q; $SUDO apt-get install -y -q redis-server; }
  echo "==> starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379
}
ensure_nats() {
  port_open 4222 && return
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] \
    || { $SUDO apt-get update -q; $SUDO apt-get install -y -q nats-server; }
  echo "==> starting nats-server"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222
}
ensure_redis
ensure_nats

echo "==> deployment files (Kubernetes manifests, Dockerfile)"
bash scripts/check-deploy.sh

echo "==> alert rules and dashboards"
python3 scripts/alerts.py --check
python3 scripts/dashboards.py --check
promtool check rules k8s/alerts/rules.yaml
(cd k8s/alerts && promtool test rules alerts-test.yaml)

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "==> cargo test (unit and integration tests)"
cargo test --locked --workspace

echo "==> the media integration tests again, with every SFU call and event through JSON"
PARLOR_TEST_SEAM=json cargo test --locked --test rooms --test whip --test bad_input

echo "==> browser tests (headless Chromium)"
# `cargo test` above built target/debug/parlor for the integration tests; a separate
# `cargo build` would rebuild the workspace with other dependency features (a minute, 0.6 GB).
[ -x target/debug/parlor ] || cargo build --locked --bin parlor
(
  cd tests/browser
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
  echo "==> tsc --noEmit over web/"
  npm run --silent typecheck
  PARLOR_BIN="$(pwd)/../../target/debug/parlor" node --test
)
echo "==> all tests passed"
