# Sourced by the e2e tests.  meson passes RDHPF_BIN, RDHPF_PLUGIN_DIR and
# RDHPF_BADPLUGIN_DIR in the environment.
set -euo pipefail

: "${RDHPF_BIN:?RDHPF_BIN not set (run through meson test)}"
: "${RDHPF_PLUGIN_DIR:?RDHPF_PLUGIN_DIR not set}"
export RDHPF_PLUGIN_DIR

T=$(mktemp -d /tmp/rdhpf-e2e.XXXXXX)
chmod 700 "$T"
DAEMON_PID=
cleanup() {
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -KILL "$DAEMON_PID" 2>/dev/null || true
	fi
	# A port holder (hold_port) outlives no test, even one that stops early.
	if [ -n "${HOLDER:-}" ]; then kill "$HOLDER" 2>/dev/null || true; fi
	rm -rf "$T"
}
trap cleanup EXIT

fails=0
ok() { echo "ok   - $*"; }
not_ok() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION CMD...
	local d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
finish() {
	if [ "$fails" -ne 0 ]; then
		echo "--- daemon log (tail) ---"; tail -n 40 "$T/log" 2>/dev/null || true
		exit 1
	fi
	exit 0
}

# hold_port PORT SECONDS: someone else listens on 127.0.0.1:PORT for
# SECONDS (in the background; its pid in HOLDER); returns once it listens.
hold_port() {
	$PY -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
open(sys.argv[3], "w").close()
time.sleep(float(sys.argv[2]))' "$1" "$2" "$T/held-$1" &
	HOLDER=$!
	wait_for 3000 test -e "$T/held-$1"
}

# wait_for TIMEOUT_MS CMD... : poll every 50 ms, bounded.
wait_for() {
	local timeout=$1; shift
	local i=0 n=$((timeout / 50))
	while [ "$i" -lt "$n" ]; do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.05; i=$((i + 1))
	done
	"$@" >/dev/null 2>&1
}

start_daemon() { # start_daemon ARGS...
	"$RDHPF_BIN" run --runtime-dir "$T/run" "$@" >"$T/out" 2>"$T/log" &
	DAEMON_PID=$!
}

stop_daemon() { # SIGTERM; returns the exit status; fails after 5 s
	local i=0
	kill -TERM "$DAEMON_PID"
	while kill -0 "$DAEMON_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		echo "# the daemon did not exit within 5 s of SIGTERM: killed"
		kill -KILL "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
		DAEMON_PID=
		return 124
	fi
	local rc=0
	wait "$DAEMON_PID" || rc=$?
	DAEMON_PID=
	return $rc
}
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3

# lab_host_section TRANSPORT RUNTIME: the [host "lab"] lines a lab test's
# config starts from (after tests/lab/lib.sh's lab_require).
lab_host_section() {
	cat <<C
[host "lab"]
url = $RDHPF_LAB_URL
identity_file = $RDHPF_LAB_KEY
known_hosts = $RDHPF_LAB_KNOWN_HOSTS
transport = $1
runtime = $2
C
}
