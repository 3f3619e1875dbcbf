#!/usr/bin/env bash
# sshd's limits reported, not failed on quietly (issue 13 part 4), over one
# transport: limits_lab.sh openssh|libssh2|libssh
# A second sshd in the lab's namespace (its own port and config; the lab's
# sshd is left alone) with MaxStartups 1 and MaxSessions 1:
#  - while another client holds the one unauthenticated slot, the host's
#    connect is refused before the handshake: status last_error and the log
#    name MaxStartups;
#  - the slot freed, the host connects (a refused connect is retried);
#  - the podman runtime needs a second session channel on the connection
#    (events and a list): refused past MaxSessions, and the report names it;
#  - (libssh2, libssh) with MaxSessions 0 the keepalive falls back to
#    keepalive@openssh.com and any inbound byte, and keeps an idle link up.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

transport=${1:?transport}
[ -f "$RDHPF_PLUGIN_DIR/transport-$transport.so" ] || { echo "SKIP: transport $transport not built"; exit 77; }
case "$transport" in
openssh) port=2202 ;;
libssh2) port=2203 ;;
*) port=2204 ;;
esac

# lab_sshd NAME PORT LIMITS: another sshd in the lab's namespace, the lab's
# config with its own address, pid file and LIMITS (sshd_config lines), its
# log in $T/NAME.log and a known_hosts for it in $T/known_hosts-NAME; its pid
# in LAB_SSHD_PID.
lab_sshd() {
	local name=$1 p=$2 limits=$3
	sed -e "s/^ListenAddress .*/ListenAddress $RDHPF_LAB_ADDR:$p/" \
		-e "s|^PidFile .*|PidFile $T/$name.pid|" \
		-e '/^MaxStartups/d' -e '/^MaxSessions/d' -e '/^LoginGraceTime/d' \
		"$RDHPF_LAB_SSHD_CONFIG" >"$T/${name}_config"
	printf '%b' "$limits" >>"$T/${name}_config"
	chmod 600 "$T/${name}_config"
	/usr/sbin/sshd -t -f "$T/${name}_config" || { echo "FAIL: sshd rejects the test config"; exit 1; }
	$RDHPF_LAB_NS_EXEC /usr/sbin/sshd -D -f "$T/${name}_config" -E "$T/$name.log" &
	LAB_SSHD_PID=$!
	sed "s/^\[$RDHPF_LAB_ADDR\]:$RDHPF_LAB_PORT /[$RDHPF_LAB_ADDR]:$p /" "$RDHPF_LAB_KNOWN_HOSTS" >"$T/known_hosts-$name"
}

# The second sshd, with the limits.
lab_sshd sshd "$port" 'MaxStartups 1\nMaxSessions 1\nLoginGraceTime 60\n'
SSHD_PID=$LAB_SSHD_PID
HOLD_PID=
trap 'kill "$SSHD_PID" 2>/dev/null || true; [ -z "$HOLD_PID" ] || kill "$HOLD_PID" 2>/dev/null || true; cleanup' EXIT
port_open() { $PY -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' "$RDHPF_LAB_ADDR" "$port"; }
check "second sshd listens on $RDHPF_LAB_ADDR:$port" wait_for 5000 port_open

# Hold the one unauthenticated slot: connected, banner read, nothing sent.
$PY - "$RDHPF_LAB_ADDR" "$port" "$T/held" <<'PY' &
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
s.recv(100)
open(sys.argv[3], "w").close()
time.sleep(50)
PY
HOLD_PID=$!
check "a client holds sshd's one startup slot" wait_for 5000 test -e "$T/held"

cat >"$T/config.ini" <<C
[host "lim"]
url = ssh://$RDHPF_LAB_USER@$RDHPF_LAB_ADDR:$port
identity_file = $RDHPF_LAB_KEY
known_hosts = $T/known_hosts-sshd
transport = $transport
runtime = podman
backoff_initial = 100ms
backoff_max = 500ms
connect_timeout = 5s
C
st_field() { # st_field FIELD: the host's status field
	"$RDHPF_BIN" status --runtime-dir "$T/run" --format json 2>/dev/null |
		$PY -c 'import json, sys; print(json.load(sys.stdin)["hosts"][0][sys.argv[1]] or "")' "$1"
}
st_has() { st_field "$1" | grep -q -- "$2"; }
start_daemon --config "$T/config.ini"
check "refused before the handshake: last_error names MaxStartups" \
	wait_for 15000 st_has last_error "refused the connection before the handshake.*MaxStartups"
check "the log says so too" grep -q "MaxStartups" "$T/log"
check "sshd did drop it past MaxStartups" grep -q "past MaxStartups" "$T/sshd.log"

kill "$HOLD_PID" 2>/dev/null || true
wait "$HOLD_PID" 2>/dev/null || true
HOLD_PID=
check "slot freed: the host connects" wait_for 15000 bash -c \
	"grep -q 'Accepted publickey' '$T/sshd.log'"
check "one session channel only: last_error names MaxSessions" \
	wait_for 20000 st_has last_error "MaxSessions"
grep -E "MaxStartups|MaxSessions" "$T/log" | head -n 4 | cut -c1-400
rc=0; stop_daemon || rc=$?
check "SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0

# No session channel at all (MaxSessions 0): the in-process transports'
# keepalive probe needs one, so they fall back to keepalive@openssh.com,
# whose replies libssh and libssh2 keep to themselves, and count any inbound
# byte.  The link must stay up on an idle connection for many deadlines
# (500 ms x 2 + 250 ms), and the log must say why the probing changed.
if [ "$transport" != openssh ]; then
	port0=$((port + 100))
	lab_sshd sshd0 "$port0" 'MaxSessions 0\n'
	SSHD0_PID=$LAB_SSHD_PID
	trap 'kill "$SSHD_PID" "$SSHD0_PID" 2>/dev/null || true; cleanup' EXIT
	port=$port0
	check "sshd with MaxSessions 0 listens on $RDHPF_LAB_ADDR:$port0" wait_for 5000 port_open
	cat >"$T/config0.ini" <<C
[host "nosess"]
url = ssh://$RDHPF_LAB_USER@$RDHPF_LAB_ADDR:$port0
identity_file = $RDHPF_LAB_KEY
known_hosts = $T/known_hosts-sshd0
transport = $transport
runtime = static
ports = 61999
keepalive_interval = 500ms
keepalive_count = 2
C
	mv "$T/log" "$T/log.limits"
	start_daemon --config "$T/config0.ini"
	check "connected" wait_for 15000 grep -q 'Accepted publickey' "$T/sshd0.log"
	check "the log says the keepalive channel was refused and what counts instead" \
		wait_for 5000 grep -q 'refused the keepalive session channel' "$T/log"
	t0=$(awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat")
	sleep 4
	t1=$(awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat")
	check "idle for 4 s (deadline 1.25 s): the link was never called dead" \
		bash -c "! grep -q 'ssh link dead' '$T/log'"
	# (libssh2 once spun a core here: input it could not read counted as work)
	check "idle: the daemon used $((t1 - t0)) of 400 CPU ticks (< 40)" test $((t1 - t0)) -lt 40
	check "one connection all along" test "$(grep -c 'Accepted publickey' "$T/sshd0.log")" -eq 1
	rc=0; stop_daemon || rc=$?
	check "SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0
fi
finish
