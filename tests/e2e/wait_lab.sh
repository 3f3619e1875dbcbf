#!/usr/bin/env bash
# rdhpf wait and rdhpf events against the lab's docker, for one transport:
# wait started before `docker run` returns once the forward serves; a
# conflicting local port makes it fail within its timeout, naming the
# conflict; 20 start/stops carry exactly 20 adds and 20 removes in the
# stream, every line valid per docs/events.schema.json.
#   wait_lab.sh TRANSPORT
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

transport=${1:?transport}
case "$transport" in
openssh) base=25400 ;;
libssh2) base=25500 ;;
libssh) base=25600 ;;
*) echo "unknown transport $transport"; exit 2 ;;
esac
[ -f "$RDHPF_PLUGIN_DIR/transport-$transport.so" ] || { echo "SKIP: transport $transport not built"; exit 77; }
SCHEMA="$(dirname "$0")/../../docs/events.schema.json"
pfx=rdhpf-e2e-wait-$transport
rmc() { $RDHPF_LAB_DOCKER rm -f "$@" >/dev/null 2>&1 || true; }
cleanup_containers() { for c in $($RDHPF_LAB_DOCKER ps -aq --filter "name=$pfx" 2>/dev/null); do rmc "$c"; done; }
cleanup_containers
HOLDER=
trap 'cleanup_containers; [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null; cleanup' EXIT

{
	lab_host_section "$transport" docker
	echo "bind_address = 127.0.0.1"
} >"$T/config.ini"
start_daemon --config "$T/config.ini"
check "control socket up" wait_for 5000 test -S "$T/run/control.sock"
"$RDHPF_BIN" events --runtime-dir "$T/run" --since-start >"$T/events.json" &
EVPID=$!

# wait before run: returns once it serves.
rc=0
"$RDHPF_BIN" wait --runtime-dir "$T/run" --timeout 20s --container "$pfx-web" >"$T/wait.out" 2>&1 &
WPID=$!
sleep 0.3
$RDHPF_LAB_DOCKER run -d --name "$pfx-web" -p "$((base + 1)):80" "$RDHPF_LAB_IMAGE" >/dev/null
wait "$WPID" || rc=$?
check "wait --container before docker run: exit 0" test $rc -eq 0
check "... and the forward serves when it returns" lab_http_ok 127.0.0.1 $((base + 1))

# A local port someone else holds: wait fails within its timeout, naming it.
$PY -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
open(sys.argv[2], "w").close(); time.sleep(60)' $((base + 2)) "$T/holder-up" &
HOLDER=$!
wait_for 3000 test -e "$T/holder-up"
$RDHPF_LAB_DOCKER run -d --name "$pfx-busy" -p "$((base + 2)):80" "$RDHPF_LAB_IMAGE" >/dev/null
rc=0
t0=$(date +%s%N)
"$RDHPF_BIN" wait --runtime-dir "$T/run" --timeout 3s --container "$pfx-busy" >"$T/wait2.out" 2>&1 || rc=$?
took=$((($(date +%s%N) - t0) / 1000000))
check "conflicting local port: wait exits 1 (after $took ms, timeout 3 s)" test $rc -eq 1
check "... naming the conflict" grep -q "container $pfx-busy: 127.0.0.1:$((base + 2)) ($pfx-busy on lab) conflict" "$T/wait2.out"
kill "$HOLDER" 2>/dev/null; HOLDER=
rmc "$pfx-busy"

for i in $(seq 1 20); do
	$RDHPF_LAB_DOCKER run -d --name "$pfx-c$i" -p "$((base + 10 + i)):80" "$RDHPF_LAB_IMAGE" >/dev/null
	"$RDHPF_BIN" wait --runtime-dir "$T/run" --timeout 10s --container "$pfx-c$i" >/dev/null 2>&1 || true
	rmc "$pfx-c$i"
done
removed20() { [ "$(grep '"event":"removed"' "$T/events.json" | grep -c "\"container\":\"$pfx-c")" -eq 20 ]; }
check "the stream saw the 20 removals" wait_for 10000 removed20
check "exactly 20 adds and 20 removes for the 20 cycled containers, every line valid" \
	$PY - "$T/events.json" "$SCHEMA" "$pfx-c" <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[2]))
ev = [json.loads(l) for l in open(sys.argv[1])]
for e in ev:
    jsonschema.validate(e, schema)
cyc = [e for e in ev if e.get("type") == "forward" and e["container"].startswith(sys.argv[3])]
adds = sum(e["event"] == "added" for e in cyc)
rems = sum(e["event"] == "removed" for e in cyc)
assert adds == 20 and rems == 20, (adds, rems)
PY
rc=0
stop_daemon || rc=$?
check "SIGTERM: exit 0" test $rc -eq 0
wait "$EVPID" 2>/dev/null || true
finish
