#!/usr/bin/env bash
# Two hosts of one daemon wanting one local port: the first to hold it keeps
# it; the other is `conflict` naming the holder host and container, and takes
# the port over once the holder's container stops.  A third host with
# on_conflict = next-free moves to the next free port at once and reports the
# mapping (status wanted_port, log).
. "$(dirname "$0")/lib.sh"

# a1 stops when the test says so (file:), after the checks that need it up.
printf '0 start a1 web 18121:80\nfile:%s stop a1\n' "$T/a1-stop" >"$T/script-a"
printf '500ms start b1 other 18122:80\n' >"$T/script-b"
printf '500ms start c1 third 18123:80\n' >"$T/script-c"
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
port_offset = -1

[host "c"]
url = ssh://t@c.invalid
script = $T/script-c
port_offset = -2
on_conflict = next-free
C
start_daemon --config "$T/config.ini"
st() { "$RDHPF_BIN" status --runtime-dir "$T/run" --format json; }
fwd() { # fwd HOST : "state local_port wanted_port error" per forward
	st | $PY -c '
import json, sys
for h in json.load(sys.stdin)["hosts"]:
    if h["name"] == sys.argv[1]:
        for f in h["forwards"]:
            print(f["state"], f["local_port"], f["wanted_port"], f["error"] or "")' "$1"
}
has_fwd() { grep -q "$2" <<<"$(fwd "$1")"; }
connects() { $PY -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"; }

check "first host holds the port" wait_for 3000 has_fwd a '^active 18121 None'
check "second host: conflict naming the holder host and container" wait_for 3000 \
	has_fwd b '^conflict 18121 None address in use: held by host a (container web)'
check "next-free host: moved to the next free port, wanted port reported" wait_for 3000 \
	has_fwd c '^active 18122 18121'
check "next-free: the move is logged with both ports" \
	grep -q 'forward moved to the next free port.*host=c.*wanted_port=18121 local_port=18122.*held_by=a' "$T/log"
check "both ports serve" bash -c "$(declare -f connects); PY=$PY; connects 18121 && connects 18122"
"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/status.json"
if $PY -c "import jsonschema" 2>/dev/null; then
	check "status json validates against docs/status.schema.json" $PY -c '
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' \
		"$T/status.json" "$(dirname "$0")/../../docs/status.schema.json"
fi
check "status table: the moved forward says which port it wanted" bash -c \
	"'$RDHPF_BIN' status --runtime-dir '$T/run' | grep -A1 -E '127.0.0.1:18122 +127.0.0.1:18123 +third +active' | grep -q 'wanted local port 18121'"
check "status table: the conflict names the holder" bash -c \
	"'$RDHPF_BIN' status --runtime-dir '$T/run' | grep -q 'address in use: held by host a (container web)'"
# a1 stops: b takes 18121 over (retried every 2 s); c stays where it is.
touch "$T/a1-stop"
check "holder's container stops: the waiting host takes the port" wait_for 8000 \
	has_fwd b '^active 18121 None'
check "next-free host keeps its moved port" has_fwd c '^active 18122 18121'
rc=0; stop_daemon || rc=$?
check "exit 0" test "$rc" -eq 0
finish
