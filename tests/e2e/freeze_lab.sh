#!/usr/bin/env bash
# Waking up: rdhpf frozen (SIGSTOP) while the sshd session of its link is
# killed, then resumed (SIGCONT).  The loop notices it was gone, checks every
# host at once, and the forward serves again.  freeze_lab.sh TRANSPORT
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

transport=${1:?transport}
case "$transport" in
openssh) port=25101 ;;
libssh2) port=25102 ;;
libssh) port=25103 ;;
*) echo "unknown transport $transport"; exit 2 ;;
esac
[ -f "$RDHPF_PLUGIN_DIR/transport-$transport.so" ] || { echo "SKIP: transport $transport not built"; exit 77; }
name=rdhpf-e2e-freeze-$transport
$RDHPF_LAB_DOCKER rm -f "$name" >/dev/null 2>&1 || true
trap '$RDHPF_LAB_DOCKER rm -f "$name" >/dev/null 2>&1 || true; kill -CONT "$DAEMON_PID" 2>/dev/null || true; cleanup' EXIT
serves() { lab_http_ok 127.0.0.1 "$port"; }

{
	lab_host_section "$transport" docker
	cat <<C
backoff_initial = 100ms
backoff_max = 500ms
health_interval = 1s
keepalive_interval = 5s
keepalive_count = 3
C
} >"$T/config.ini"
$RDHPF_LAB_DOCKER run -d --name "$name" -p "$port:80" "$RDHPF_LAB_IMAGE" >/dev/null
start_daemon --config "$T/config.ini"
check "forward serves" wait_for 10000 serves
connected0=$(grep -c 'msg="connected"' "$T/log" || true)

kill -STOP "$DAEMON_PID"
# Kill the sshd processes of every established SSH connection (ours: the
# lab is held by this test), not the listener.
sessions=$(lab_ns ss -Htnp state established '( sport = :22 )' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
check "found the sshd session(s) of the link" test -n "$sessions"
# shellcheck disable=SC2086
kill -KILL $sessions 2>/dev/null || true
sleep 4
t0=$(date +%s%N)
kill -CONT "$DAEMON_PID"
check "serves again after SIGCONT" wait_for 10000 serves
echo "# serving again $((($(date +%s%N) - t0) / 1000000)) ms after SIGCONT"
check "the pause was noticed (log says so, cause=pause)" \
	grep -q 'the loop did not run for a while.*cause=pause' "$T/log"
check "a new connection was made" test "$(grep -c 'msg="connected"' "$T/log")" -gt "$connected0"
check "metrics count the pause" bash -c "'$RDHPF_BIN' metrics --runtime-dir '$T/run' | grep -q '^rdhpf_loop_pauses_total.* [1-9]'"
rc=0
stop_daemon || rc=$?
check "SIGTERM: exit 0" test $rc -eq 0
finish
