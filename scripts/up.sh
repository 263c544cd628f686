#!/usr/bin/env bash
# Runs the whole platform on embedded defaults (SQLite under ./data, a
# nats-server it starts itself), after installing a nats-server >= 2.11 into
# .tools/ when the machine has none. Extra arguments go to `chorus up`.
set -euo pipefail
cd "$(dirname "$0")/.."
CHORUS_NATS_SERVER="$(scripts/install-nats.sh)"
export CHORUS_NATS_SERVER
echo "up.sh: nats-server: $CHORUS_NATS_SERVER ($("$CHORUS_NATS_SERVER" --version))"
exec cargo run --release -- up "$@"
