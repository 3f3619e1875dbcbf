#!/usr/bin/env bash
# rdhpf events and rdhpf wait end to end on the fake plugins (real
# listeners: bind_ports=yes), every stream line checked against
# docs/events.schema.json.
. "$(dirname "$0")/lib.sh"
SCHEMA="$(dirname "$0")/../../docs/events.schema.json"

# web starts at 1.5 s; 20 short-lived containers (cyc00..cyc19) start and
# stop afterwards, each living 400 ms (at 50 ms a loaded machine saw start
# and stop in one loop turn, rightly no forward, and the count below
# failed); "busy" publishes a port someone else holds.
{
	echo "0     start d1dddddddddd db 18190:5432"
	echo "1500ms start c1aaaaaaaaaa web 18180:80 18181:81 18183:53/udp"
	# In time order: runtime-fake applies steps in file order, so start
	# e01 written after stop e00 would wait for it (100 ms lives).
	for i in $(seq 0 19); do
		printf '%dms start e%02deeeeeeeeee cyc%02d %d:80\n' $((2000 + i * 100)) "$i" "$i" $((18200 + i))
		printf '%dms stop e%02deeeeeeeeee\n' $((2400 + i * 100)) "$i"
	done | sort -n -s
	echo "4500ms start f1ffffffffff busy 18189:80"
	# The burst and the churn start when the test says so (flood-go), after
	# the wait checks, and keep their own spacing: in time order, the first
	# step gated, each next one "+N ms" after the one before.
	{
		# A burst for the client that does not read.  Its size must not depend
		# on the machine's speed: 600 containers that stay up, each publishing
		# 16 UDP ports, give 9,600 "skipped" lines (~2.5 MB, ten times what the
		# daemon queues plus what the kernel buffers) whatever the loop's lag.
		for i in $(seq 0 599); do
			ports=
			for k in $(seq 0 15); do ports="$ports $((30000 + i * 16 + k)):$((80 + k))/udp"; done
			printf '%dms start u%04duuuuuuuu uflood%04d%s\n' $((6000 + 3 * i)) "$i" "$i" "$ports"
		done
		# Churn on top: 600 short containers with 16 TCP ports each (how many
		# of these become forwards depends on the loop's lag: a start and stop
		# seen in one turn rightly make none).
		for i in $(seq 0 599); do
			ports=
			for k in $(seq 0 15); do ports="$ports $((20000 + (i % 60) * 16 + k)):$((80 + k))"; done
			printf '%dms start g%04dgggggggg flood%04d%s\n' $((6000 + 3 * i)) "$i" "$i" "$ports"
			printf '%dms stop g%04dgggggggg\n' $((6100 + 3 * i)) "$i"
		done
	} | sort -n -s | awk -v go="$T/flood-go" '{
		t = $1 + 0; $1 = NR == 1 ? "file:" go : "+" (t - prev) "ms"; prev = t; print }'
} >"$T/script"
cat >"$T/config.ini" <<C
[defaults]
bind_address = 127.0.0.1
backoff_initial = 100ms
backoff_max = 400ms

[host "lab"]
url = ssh://tester@remote.invalid
transport = fake
runtime = fake
state_file = $T/state
script = $T/script
bind_ports = yes
C

# Someone else holds 18189.
hold_port 18189 60

start_daemon --config "$T/config.ini"
check "control socket up" wait_for 3000 test -S "$T/run/control.sock"

# A stream from the start; another that never reads (its socket buffer fills).
"$RDHPF_BIN" events --runtime-dir "$T/run" --since-start >"$T/events.json" &
EVPID=$!
$PY - "$T/run/control.sock" "$T/stuck.out" "$T/log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"events\n")
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
# Never read while the daemon sends: until it says it cut us off (bounded).
for _ in range(600):
    time.sleep(0.1)
    if b"client cut off" in open(sys.argv[3], "rb").read():
        break
data, eof = b"", False
s.settimeout(5)
try:
    while True:
        b = s.recv(65536)
        if not b:
            eof = True
            break
        data += b
except Exception:
    pass
open(sys.argv[2], "w").write("eof\n" if eof else "open\n")
PY
STUCK=$!

# wait for a container that is not there yet: returns once it serves.
t0=$(date +%s%N)
rc=0
"$RDHPF_BIN" wait --runtime-dir "$T/run" --timeout 10s --container web >"$T/wait.out" 2>&1 || rc=$?
t1=$(date +%s%N)
check "wait --container web returns 0 once web serves (took $(((t1 - t0) / 1000000)) ms)" test $rc -eq 0
check "wait names both of web's ports" grep -q 'ready: 127.0.0.1:18181' "$T/wait.out"
check "web's ports really serve" $PY -c 'import socket; socket.create_connection(("127.0.0.1", 18180), 1)'

check "wait PORT for an already active forward returns 0" \
	"$RDHPF_BIN" wait --runtime-dir "$T/run" --timeout 5s 18190

rc=0
"$RDHPF_BIN" wait --runtime-dir "$T/run" --timeout 700ms 18999 >"$T/wait2.out" 2>&1 || rc=$?
check "wait on a port nobody publishes fails at the timeout" test $rc -eq 1
check "... and says no container publishes it" grep -q 'port 18999: no container publishes it' "$T/wait2.out"

rc=0
"$RDHPF_BIN" wait --runtime-dir "$T/run" --timeout 6s --container busy >"$T/wait3.out" 2>&1 || rc=$?
check "wait on a container whose port is taken fails" test $rc -eq 1
check "... naming the conflict" grep -q 'container busy: 127.0.0.1:18189 (busy on lab) conflict' "$T/wait3.out"
"$RDHPF_BIN" wait --runtime-dir "$T/run" --timeout 1s --container nosuch >"$T/wait4.out" 2>&1 || true
check "wait on an unknown container says so" grep -q 'container nosuch: no such container running' "$T/wait4.out"
"$RDHPF_BIN" wait --runtime-dir "$T/run" --host nope --timeout 1s 18190 >"$T/wait5.out" 2>&1 || true
check "wait --host with an unknown host says so" grep -q "no host named 'nope'" "$T/wait5.out"

# The flood overflows the client that does not read: it is cut off, the
# daemon goes on.
touch "$T/flood-go"
check "stuck client cut off, with the reason in the log" \
	wait_for 30000 grep -q 'control stream client cut off.*client too slow' "$T/log"
wait "$STUCK" 2>/dev/null || true
check "... and its connection was closed by the daemon" grep -qx eof "$T/stuck.out"
check "forwards keep working after the cut: status answers, db serves" \
	"$RDHPF_BIN" wait --runtime-dir "$T/run" --timeout 5s 18190
check "the flood's forwards all came and went" wait_for 8000 $PY - "$T/run" "$RDHPF_BIN" <<'PY'
import json, subprocess, sys
st = json.loads(subprocess.run([sys.argv[2], "status", "--runtime-dir", sys.argv[1], "--format", "json"],
                               capture_output=True, text=True, check=True).stdout)
ports = {f["local_port"] for f in st["hosts"][0]["forwards"]}
assert not any(20000 <= p < 21000 for p in ports), sorted(ports)[:5]
assert 18190 in ports
PY
rc=0
stop_daemon || rc=$?
check "daemon exits 0 on SIGTERM with stream clients connected" test $rc -eq 0
wait "$EVPID" 2>/dev/null || true
check "events client ends when the daemon stops" true

check "every stream line is valid per docs/events.schema.json" $PY - "$T/events.json" "$SCHEMA" <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[2]))
# One validator for all lines: jsonschema.validate checks the schema itself
# at every call, and the flood's stream has tens of thousands of lines.
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
validator = cls(schema)
lines = open(sys.argv[1]).read().splitlines()
assert lines, "no lines"
for n, l in enumerate(lines, 1):
    validator.validate(json.loads(l))
assert json.loads(lines[0])["type"] == "hello", lines[0]
assert any(json.loads(l)["type"] == "replay-end" for l in lines)
PY
check "exactly 20 adds and 20 removes for the 20 cycled containers" $PY - "$T/events.json" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
cyc = [e for e in ev if e.get("type") == "forward" and e["container"].startswith("cyc")]
adds = sum(e["event"] == "added" for e in cyc)
rems = sum(e["event"] == "removed" for e in cyc)
assert adds == 20 and rems == 20, (adds, rems)
assert all(e["reason"] == "container stopped" for e in cyc if e["event"] == "removed")
PY
check "web's UDP port is in the stream as skipped, with the reason" $PY - "$T/events.json" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
sk = [e for e in ev if e.get("event") == "skipped" and e["container"] == "web"]
assert len(sk) == 1 and sk[0]["remote_port"] == 18183 and sk[0]["reason"].startswith("udp"), sk
PY
finish
