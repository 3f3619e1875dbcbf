#!/usr/bin/env bash
# Privileged local ports, rdhpf run as an unprivileged user (nobody, no
# capabilities): a port below ip_unprivileged_port_start is never attempted
# (so never retried in a loop) and status and the log say it needs
# CAP_NET_BIND_SERVICE or a port_map; privileged = offset N moves it;
# privileged = skip lists it as skipped.  Needs root to drop to nobody.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to run the daemon as nobody"; exit 77; }
start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || echo 1024)
[ "$start" -gt 80 ] || { echo "SKIP: ip_unprivileged_port_start is $start: port 80 is not privileged here"; exit 77; }

U=$(mktemp -d /tmp/rdhpf-e2e-priv.XXXXXX)
trap 'rm -rf "$U"; cleanup' EXIT
chown 65534:65534 "$U"
chmod 700 "$U"
printf '0 start p1 web 80:80 18140:81\n' >"$U/script"
cat >"$U/config.ini" <<C
[defaults]
transport = fake
runtime = fake
bind_address = 127.0.0.1

[host "plain"]
url = ssh://t@a.invalid
script = $U/script
state_file = $U/state-plain

[host "moved"]
url = ssh://t@b.invalid
script = $U/script
state_file = $U/state-moved
port_offset = 1
privileged = offset 18000

[host "skipped"]
url = ssh://t@c.invalid
script = $U/script
state_file = $U/state-skipped
port_offset = 2
privileged = skip
C
chown -R 65534:65534 "$U"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all "$@"; }
# setpriv itself, not the function: DAEMON_PID must be the daemon (setpriv execs it).
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
	"$RDHPF_BIN" run --runtime-dir "$U/run" --config "$U/config.ini" >"$T/out" 2>"$T/log" &
DAEMON_PID=$!

st() { as_nobody "$RDHPF_BIN" status --runtime-dir "$U/run" --format json; }
ready() { st >"$T/status.json" 2>/dev/null && grep -q '"steady"' "$T/status.json" &&
	[ "$(grep -o '"steady"' "$T/status.json" | wc -l)" -eq 3 ] &&
	grep -qx 'forward 127.0.0.1:18140 127.0.0.1:18140' "$U/state-plain" 2>/dev/null; }
check "three hosts steady" wait_for 5000 ready
check "status: port 80 skipped with the reason; others as configured" $PY - "$T/status.json" <<'PY'
import json, sys
hs = {h["name"]: h for h in json.load(open(sys.argv[1]))["hosts"]}
def skip(h, port):
    return [s for s in hs[h]["skipped"] if s["remote_port"] == port]
def fwd(h, port):
    return [f for f in hs[h]["forwards"] if f["remote_port"] == port]
s = skip("plain", 80)
assert len(s) == 1 and "needs root or CAP_NET_BIND_SERVICE, or a port_map" in s[0]["reason"], s
assert s[0]["local_port"] == 80, s
assert fwd("plain", 80) == [], fwd("plain", 80)
assert fwd("plain", 18140)[0]["local_port"] == 18140
f = fwd("moved", 80)
assert len(f) == 1 and f[0]["local_port"] == 18081, f   # 80 + 1, then + 18000
assert skip("moved", 80) == []
s = skip("skipped", 80)
assert len(s) == 1 and s[0]["reason"] == "privileged local port skipped (privileged = skip)", s
PY
check "the log says why, once" test "$(grep -c 'port not forwarded.*remote_port=80 .*CAP_NET_BIND_SERVICE' "$T/log")" -eq 1
check "never attempted: the fake transport saw no forward on port 80" \
	bash -c "! grep -q ':80 ' '$U/state-plain'"
sleep 2.5 # one forward retry period: a privileged port must not be retried
check "no retry loop: still one log line, no forward errors" bash -c \
	"[ \"\$(grep -c 'host=plain.*remote_port=80 ' '$T/log')\" -eq 1 ] && ! grep -q 'will retry' '$T/log'"
rc=0; stop_daemon || rc=$?
check "exit 0 (got $rc)" test "$rc" -eq 0
finish
