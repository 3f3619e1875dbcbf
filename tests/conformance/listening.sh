#!/usr/bin/env bash
# rdhpf-conformance on the listening runtime, with this machine as the
# remote (the built-in local transport): a listener this script starts must
# be listed, and must go once --stop-cmd killed it.
#   listening.sh RDHPF-CONFORMANCE RUNTIME-LISTENING.so
set -euo pipefail
conf=$1 so=$2
dir=$(mktemp -d)
trap 'kill "$lpid" 2>/dev/null || true; rm -rf "$dir"' EXIT
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(600)
' >"$dir/port" &
lpid=$!
for _ in $(seq 100); do [[ -s $dir/port ]] && break; sleep 0.05; done
port=$(cat "$dir/port")
[[ $port =~ ^[0-9]+$ ]] || { echo "listener did not start" >&2; exit 1; }
rc=0
"$conf" runtime "$so" --option "exclude=22" \
  --bad-option "include=abc" --bad-option "exclude=0" --bad-option "include=9-3" \
  --expect-port "$port" --stop-cmd "kill $lpid" || rc=$?
exit "$rc"
