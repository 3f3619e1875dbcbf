#!/usr/bin/env bash
# A local port already in use: that forward is `conflict` with the reason,
# retried, and becomes active by itself once the port frees; other forwards
# are unaffected.  Two hosts publishing the same port: the first keeps it.
. "$(dirname "$0")/lib.sh"

printf '0 start a1 web 18111:80 18112:81\n' >"$T/script-a"
printf '500ms start b1 other 18113:80\n' >"$T/script-b"
cat >"$T/config.ini" <<C
[defaults]
transport = fake
runtime = fake
bind_ports = yes
bind_address = 127.0.0.1

[host "a"]
url = ssh://t@a.invalid
script = $T/script-a

[host "b"]
url = ssh://t@b.invalid
script = $T/script-b
port_offset = -2
C
# Someone else holds 18111 locally, until the test lets it go.
hold_port 18111 60
holder=$HOLDER
start_daemon --config "$T/config.ini"
st() { "$RDHPF_BIN" status --runtime-dir "$T/run" --format json; }
fwd_state() { # fwd_state HOST PORT
	st | $PY -c '
import json, sys
for h in json.load(sys.stdin)["hosts"]:
    if h["name"] == sys.argv[1]:
        for f in h["forwards"]:
            if f["local_port"] == int(sys.argv[2]):
                print(f["state"], f["error"] or "")' "$1" "$2"
}
is_state() { grep -q "^$3" <<<"$(fwd_state "$1" "$2")"; }
check "taken port is conflict" wait_for 3000 is_state a 18111 conflict
check "conflict says why" bash -c "$(declare -f st fwd_state); PY=$PY RDHPF_BIN=$RDHPF_BIN T=$T; fwd_state a 18111 | grep -q 'address in use'"
check "other forward of the same container unaffected" is_state a 18112 active
check "host b: its port 18113-2=18111 also waits (first keeps it)" wait_for 3000 is_state b 18111 conflict
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
check "conflict clears by itself once the port frees" wait_for 6000 bash -c \
	"$(declare -f st fwd_state is_state); PY=$PY RDHPF_BIN=$RDHPF_BIN T=$T; is_state a 18111 active || is_state b 18111 active"
rc=0; stop_daemon || rc=$?
check "exit 0" test "$rc" -eq 0
finish
