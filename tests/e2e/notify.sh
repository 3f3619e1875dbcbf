#!/usr/bin/env bash
# systemd readiness without systemd: a stand-in reads NOTIFY_SOCKET the way
# systemd does.  READY=1 comes once every host has synced or failed for the
# first time (not before), STATUS= follows the forwards, WATCHDOG=1 keeps
# coming at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM.
. "$(dirname "$0")/lib.sh"

cat >"$T/script" <<'S'
0     start c1aaaaaaaaaa web 18280:80 18281:81
S
echo down >"$T/control-b"
cat >"$T/config.ini" <<C
[defaults]
bind_address = 127.0.0.1
backoff_initial = 100ms
backoff_max = 400ms

[host "a"]
url = ssh://tester@a.invalid
transport = fake
runtime = fake
state_file = $T/state
script = $T/script

[host "b"]
url = ssh://tester@b.invalid
transport = fake
runtime = fake
state_file = $T/state-b
control_file = $T/control-b
script = $T/script
C

# The stand-in: every datagram as one line "<ms since start> <text>".
$PY - "$T/notify.sock" "$T/notify.log" <<'PY' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
t0 = time.monotonic()
s.settimeout(20)
with open(sys.argv[2], "w", buffering=1) as out:
    try:
        while True:
            m = s.recv(4096).decode()
            out.write("%d %s\n" % ((time.monotonic() - t0) * 1000, m.replace("\n", " | ")))
            if m.startswith("STOPPING=1"):
                break
    except socket.timeout:
        pass
PY
LISTENER=$!
wait_for 3000 test -S "$T/notify.sock"

NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=400000 start_daemon --config "$T/config.ini"
check "READY=1 arrives" wait_for 8000 grep -q 'READY=1' "$T/notify.log"
check "READY=1 only once host a synced and b failed (not before)" \
	grep -q 'READY=1 | STATUS=1/2 hosts up, ' "$T/notify.log"
check "exactly one READY=1" test "$(grep -c 'READY=1' "$T/notify.log")" -eq 1
check "WATCHDOG=1 keeps coming (at least 3 in 1.5 s)" wait_for 1500 \
	bash -c "test \$(grep -c 'WATCHDOG=1' '$T/notify.log') -ge 3"
echo up >"$T/control-b"
check "STATUS= follows: both hosts up" wait_for 5000 grep -q 'STATUS=2/2 hosts up, 4 forwards active' "$T/notify.log"
rc=0
stop_daemon || rc=$?
check "SIGTERM: exit 0" test $rc -eq 0
check "STOPPING=1 on SIGTERM" wait_for 3000 grep -q 'STOPPING=1' "$T/notify.log"
wait "$LISTENER" 2>/dev/null || true
[ "$fails" -eq 0 ] || cat "$T/notify.log"
finish
