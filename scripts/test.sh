#!/usr/bin/env bash
# The test suite, on a fresh machine: installs what the tests need when it is
# missing (a nats-server >= 2.11, PostgreSQL on 127.0.0.1:5432 with trust
# auth, promtool, Chromium and the browser test's packages, Node.js and the
# GraphQL over HTTP audit's packages, cargo-nextest),
# starts what must run, then runs every test. Extra arguments go to nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  echo "test.sh: installing $* from Debian"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# nats-server >= 2.11: the tests start their own (PATH, or .tools/bin).
CHORUS_NATS_SERVER="$(scripts/install-nats.sh)"
export CHORUS_NATS_SERVER
echo "test.sh: nats-server: $CHORUS_NATS_SERVER ($("$CHORUS_NATS_SERVER" --version))"

# Postgres: every database test also runs on it.
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if [ -z "${CHORUS_TEST_POSTGRES_URL:-}" ] && ! pg_up; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    version=$(ls /etc/postgresql | head -n1)
    # The tests connect over TCP as postgres without a password (trust), as on the dev machines.
    as_root sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "/etc/postgresql/$version/main/pg_hba.conf"
  fi
  echo "test.sh: starting the local PostgreSQL cluster"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "test.sh: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi

# promtool (Debian's prometheus package): a test lints /metrics with it.
command -v promtool >/dev/null 2>&1 || apt_install prometheus

# Chromium and the Playwright script's packages: the browser test drives the example app.
if [ "${CHORUS_TEST_SKIP_BROWSER:-}" != 1 ]; then
  [ -x /usr/bin/chromium ] || apt_install chromium
  if [ ! -d tests/browser/node_modules ]; then
    echo "test.sh: installing the browser test's npm packages"
    npm ci --prefix tests/browser --no-audit --no-fund
  fi
fi

# Node.js and the GraphQL over HTTP audit's packages (graphql-http).
command -v node >/dev/null 2>&1 || apt_install nodejs npm
if [ ! -d tests/http-audit/node_modules ]; then
  echo "test.sh: installing the GraphQL over HTTP audit's npm packages"
  npm ci --prefix tests/http-audit --no-audit --no-fund
fi

command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked

exec cargo nextest run --workspace "$@"
