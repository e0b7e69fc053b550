#!/bin/sh
# Start a tor with no network just long enough to write an onion service's key and hostname (or to
# derive the hostname from a restored key), then stop it. A separate DataDirectory keeps it clear of
# any tor already running. Usage: onion-keygen.sh HIDDEN_SERVICE_DIR [TIMEOUT_SECONDS]
set -eu
hs_dir=$1
timeout=${2:-60}
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
chown debian-tor:debian-tor "$work"
: > "$work/defaults"
cat > "$work/torrc" <<TORRC
User debian-tor
DataDirectory $work/data
DisableNetwork 1
SocksPort 0
Log notice file $work/log
HiddenServiceDir $hs_dir
HiddenServicePort 80 127.0.0.1:1
TORRC
tor --defaults-torrc "$work/defaults" -f "$work/torrc" --RunAsDaemon 0 >/dev/null 2>&1 &
pid=$!
waited=0
while [ ! -s "$hs_dir/hostname" ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "tor exited before writing $hs_dir/hostname; its log:" >&2; cat "$work/log" >&2 || true; exit 1
  fi
  if [ "$waited" -ge "$((timeout * 10))" ]; then
    echo "tor wrote no $hs_dir/hostname within ${timeout}s; its log:" >&2; cat "$work/log" >&2 || true; exit 1
  fi
  sleep 0.1
  waited=$((waited + 1))
done
echo "onion key and hostname are in $hs_dir"
