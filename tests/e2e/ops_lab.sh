#!/usr/bin/env bash
# Operating rdhpf against the lab: doctor passes every check, and names the
# failing check and its fix with a wrong host key, with sshd stopped and
# with the engine stopped; SIGHUP with one of two hosts changed leaves a TCP
# connection held through the unchanged host's forward alive.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

pfx=rdhpf-ops
cleanup_c() { $RDHPF_LAB_DOCKER rm -f "$pfx-echo" >/dev/null 2>&1 || true; }
cleanup_c
trap 'cleanup_c; lab_sshd_start >/dev/null 2>&1 || true; cleanup' EXIT

host() { # host NAME OFFSET [KNOWN_HOSTS]
	printf '[host "%s"]\nurl = %s\nidentity_file = %s\nknown_hosts = %s\ntransport = openssh\nruntime = docker\nport_offset = %s\nbackoff_initial = 100ms\nbackoff_max = 500ms\nhealth_interval = 1s\n%s\n' \
		"$1" "$RDHPF_LAB_URL" "$RDHPF_LAB_KEY" "${3:-$RDHPF_LAB_KNOWN_HOSTS}" "$2" "${4:-}"
}
doctor() { "$RDHPF_BIN" doctor --runtime-dir "$T/drun" "$@" 2>&1; }

host lab 0 >"$T/good.ini"
out=$(doctor --config "$T/good.ini" --host lab) && rc=0 || rc=$?
echo "$out"
check "doctor against the lab: exit 0" test "$rc" -eq 0
for c in "config valid" "plugins load" "TCP reach" "host key known" "auth" "ControlPath length" \
	"engine answers" "event stream"; do
	check "doctor: '$c' ok" grep -q "^\[ ok \] $c" <<<"$out"
done
check "doctor: server keepalive reported" grep -Eq '^\[( ok |warn|info)\] server keepalive' <<<"$out"

host lab 0 "$RDHPF_LAB_KNOWN_HOSTS_WRONG" >"$T/wrong.ini"
cp "$RDHPF_LAB_KNOWN_HOSTS_WRONG" "$T/kh.before"
out=$(doctor --config "$T/wrong.ini" --host lab) && rc=0 || rc=$?
echo "$out"
check "doctor, wrong host key: fails" test "$rc" -ne 0
check "doctor, wrong host key: names the check" grep -q '^\[FAIL\] host key known.*mismatch' <<<"$out"
check "doctor, wrong host key: says how to fix it" grep -q 'fix: .*known_hosts' <<<"$out"
check "doctor never touches known_hosts" cmp -s "$T/kh.before" "$RDHPF_LAB_KNOWN_HOSTS_WRONG"

lab_sshd_stop
out=$(doctor --config "$T/good.ini" --host lab) && rc=0 || rc=$?
lab_sshd_start
echo "$out"
check "doctor, sshd stopped: names TCP reach" grep -q '^\[FAIL\] TCP reach' <<<"$out"
check "doctor, sshd stopped: fix given" grep -q 'fix: is sshd running' <<<"$out"

lab_dockerd_stop
out=$(doctor --config "$T/good.ini" --host lab) && rc=0 || rc=$?
lab_dockerd_start
echo "$out"
check "doctor, engine stopped: ssh checks still pass" grep -q '^\[ ok \] auth' <<<"$out"
check "doctor, engine stopped: names the engine check" grep -q '^\[FAIL\] engine answers' <<<"$out"
check "doctor, engine stopped: fix given" grep -q 'fix: is dockerd running' <<<"$out"

# SIGHUP: two hosts (the lab twice, the second shifted by port_offset);
# change only b while a connection is held through a.
$RDHPF_LAB_DOCKER run -d --name "$pfx-echo" -p 28007:7 "$RDHPF_LAB_IMAGE" nc -ll -p 7 -e cat >/dev/null
{ host a 0; host b 1000; } >"$T/two.ini"
start_daemon --config "$T/two.ini"
tcp_open() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
check "a forwards the echo port" wait_for 8000 tcp_open 28007
$PY - 28007 "$T/held" "$T/go" <<'PY' &
import os, socket, sys, time
port, flag, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = None
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5); break
    except OSError:
        time.sleep(0.1)
s.sendall(b"one\n")
assert s.recv(16) == b"one\n"
open(flag, "w").write("held")
for _ in range(300):            # wait (bounded) for the reload
    if os.path.exists(go): break
    time.sleep(0.1)
s.sendall(b"two\n")
data = s.recv(16)
open(flag, "w").write("survived" if data == b"two\n" else "lost:%r" % data)
PY
client=$!
check "connection held through a's forward" wait_for 10000 grep -q held "$T/held"
{ host a 0; host b 1000 "" "keepalive_count = 5"; } >"$T/two.ini"
kill -HUP "$DAEMON_PID"
check "reload: b changed, a unchanged" wait_for 5000 grep -q 'config reloaded.*changed=1 unchanged=1' "$T/log"
touch "$T/go"
wait "$client" || true
check "the held connection survived the reload" grep -qx survived "$T/held"
rc=0; stop_daemon || rc=$?
check "exit 0" test "$rc" -eq 0
finish
