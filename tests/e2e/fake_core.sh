#!/usr/bin/env bash
# The core end to end on the fake plugins: forwards follow the script; a
# transport failure → backoff → reconnect → full resync restores every
# forward, including a container that "started" during the outage.
. "$(dirname "$0")/lib.sh"

# c1 stops, and c3 starts, when the test says so (file:): c3 once the test
# has seen the link go down, not at a time that a slow run (ASan) can reach
# before the outage begins.
cat >"$T/script" <<S
0     start c1aaaaaaaaaa web 18080:80 127.0.0.1:18081:81 5353:53/udp
0     start c2bbbbbbbbbb db [::]:15432:5432 0.0.0.0:15432:5432
file:$T/c1-stop stop c1aaaaaaaaaa
file:$T/c3-go start c3cccccccccc late 19090:90
this line is malformed and must be skipped
S
cat >"$T/config.ini" <<C
[defaults]
metrics_listen = 127.0.0.1:19464
backoff_initial = 100ms
backoff_max = 400ms
health_interval = 200ms

[host "lab"]
url = ssh://tester@remote.invalid
transport = fake
runtime = fake
state_file = $T/state
control_file = $T/control
script = $T/script
C

has() { grep -qx "$1" "$T/state"; }
hasnt() { ! grep -qx "$1" "$T/state"; }
connects_at_least() { [ "$(awk '/^connects/ {print $2}' "$T/state")" -ge "$1" ]; }

start_daemon --config "$T/config.ini" --log-level debug
check "web and admin ports forwarded" wait_for 3000 has "forward 127.0.0.1:18080 127.0.0.1:18080"
check "port on remote 127.0.0.1 forwarded to it" has "forward 127.0.0.1:18081 127.0.0.1:18081"
check "dual-stack publish is one forward per loopback" test "$(grep -c ':15432 ' "$T/state")" -eq 2
check "bind_address localhost (default): 127.0.0.1 and ::1" bash -c "grep -qx 'forward 127.0.0.1:15432 127.0.0.1:15432' '$T/state' && grep -qx 'forward ::1:15432 127.0.0.1:15432' '$T/state'"
check "udp publish not forwarded" hasnt "forward 127.0.0.1:5353 127.0.0.1:5353"
touch "$T/c1-stop"
check "stopped container's forwards removed" wait_for 3000 hasnt "forward 127.0.0.1:18080 127.0.0.1:18080"
check "malformed script line logged with its line number" grep -q 'script line skipped.*line=5' "$T/log"

"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/status.json"
check "status json: host steady, db forward active, web ended as 'container stopped'" $PY - "$T/status.json" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
h = st["hosts"][0]
assert h["state"] == "steady", h["state"]
f = {x["local_port"]: x for x in h["forwards"]}
assert f[15432]["state"] == "active" and f[15432]["container"] == "db", f
assert 18080 not in f
assert any(e["local_port"] == 18080 and e["reason"] == "container stopped" for e in st["ended"]), st["ended"]
PY
if $PY -c "import jsonschema" 2>/dev/null; then
	check "status json validates against docs/status.schema.json" $PY -c '
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' \
		"$T/status.json" "$(dirname "$0")/../../docs/status.schema.json"
else
	not_ok "python3-jsonschema missing (scripts/deps installs it)"
fi
check "status table names the forward" bash -c "'$RDHPF_BIN' status --runtime-dir '$T/run' | grep -Eq '127.0.0.1:15432 +127.0.0.1:15432 +db +active'"
"$RDHPF_BIN" metrics --runtime-dir "$T/run" >"$T/metrics"
check "metrics parse as Prometheus text" $PY - "$T/metrics" <<'PY'
import re, sys
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
series = re.compile(r'^(' + name + r')(\{(' + name + r'="([^"\\]|\\.)*"(,' + name + r'="([^"\\]|\\.)*")*)?\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')
typed = {}
for line in open(sys.argv[1]).read().splitlines():
    if line.startswith('# HELP '):
        assert re.match(r'^# HELP ' + name + ' .+$', line), line
    elif line.startswith('# TYPE '):
        m = re.match(r'^# TYPE (' + name + ') (counter|gauge|summary|histogram|untyped)$', line)
        assert m, line
        assert m.group(1) not in typed, 'TYPE twice: ' + line
        typed[m.group(1)] = m.group(2)
    else:
        m = series.match(line)
        assert m, 'bad series line: ' + line
        base = re.sub(r'_(sum|count)$', '', m.group(1)) if m.group(1) not in typed else m.group(1)
        assert base in typed, 'series before its TYPE: ' + line
assert 'rdhpf_connects_total' in typed
PY
check "metrics served over HTTP (metrics_listen)" bash -c "curl -fsS --noproxy '*' -m 2 http://127.0.0.1:19464/metrics | grep -q '^rdhpf_connects_total'"
check "metrics: one active forward on each loopback" grep -q '^rdhpf_forwards_active{host="lab",plugin="fake"} 2$' "$T/metrics"
check "metrics: one connect" grep -q '^rdhpf_connects_total{host="lab",plugin="fake"} 1$' "$T/metrics"

# The link goes down before c3 starts; c3 starts while it is down.
echo down >"$T/control"
check "link down noticed" wait_for 2000 grep -q 'link down' "$T/log"
touch "$T/c3-go"
sleep 1.8
check "nothing added while down" hasnt "forward 127.0.0.1:19090 127.0.0.1:19090"
rm -f "$T/control"
check "reconnected" wait_for 3000 connects_at_least 2
check "container started during the outage forwarded after reconnect" \
	wait_for 3000 has "forward 127.0.0.1:19090 127.0.0.1:19090"
check "earlier forward restored after reconnect" has "forward 127.0.0.1:15432 127.0.0.1:15432"
check "still running" kill -0 "$DAEMON_PID"

t0=$(date +%s%N)
rc=0; stop_daemon || rc=$?
t1=$(date +%s%N)
check "SIGTERM exits 0 (got $rc)" test "$rc" -eq 0
check "SIGTERM exits within 2 s" test $(((t1 - t0) / 1000000)) -lt 2000
check "forwards removed at shutdown" bash -c "! grep -q '^forward' '$T/state'"
check "pid file removed" test ! -e "$T/run/rdhpf.pid"
finish
