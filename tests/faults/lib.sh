# shellcheck shell=bash
# tests/faults/lib.sh — shared by the fault scenarios: the real binary, the
# lab, one transport per run.  A scenario script does
#
#   . "$(dirname "$0")/lib.sh"
#   fault_init NAME "$1"         # transport: openssh | libssh2 | libssh
#   fault_config; fault_start    # short policy, wait until steady
#   ... inject the fault, measure, check ...
#   fault_end                    # common end checks, RESULT line, exit
#
# What every scenario asserts (fault_end and the helpers below): after
# recovery every port published by the scenario's running containers serves
# on the daemon's bind address (none lost); the recovery time is printed;
# the SSH connections the lab sshd accepted meanwhile are counted and
# bounded; the log stays under a bound; rdhpf never exits (and SIGTERM at the
# end exits 0, leaves no ssh child and an empty runtime directory).
#
# Isolation: each transport binds its forwards on its own loopback address
# (openssh 127.0.0.21, libssh2 127.0.0.22, libssh 127.0.0.23) and uses its own remote port
# range, so another rdhpf running against the same lab (other tests, other
# engineers) never answers a probe in our place.  Containers are named
# rdhpf-fault-TRANSPORT-SCENARIO-*, and removed on exit; the lab (sshd,
# dockerd, the blackhole rule) is put back on exit whatever happened.
#
# Known gaps (a behaviour that is right but that rdhpf does not have yet,
# reported to the owners) print "GAP  - ..." and do not fail the run unless
# RDHPF_FAULTS_STRICT=1.

FAULTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$FAULTS_DIR/../e2e/lib.sh"
# shellcheck source=tests/lab/lib.sh
. "$FAULTS_DIR/../lab/lib.sh"
lab_require

PROBE="$PY $FAULTS_DIR/probe.py"
LOG_MAX=${LOG_MAX:-65536}
gaps=0
# Filled in by scenarios, printed on the RESULT line.
R_RECOVERY=- R_DETECT=- R_CONNS=- R_NOTE=

fault_init() { # fault_init SCENARIO TRANSPORT
	SCENARIO=$1 TRANSPORT=${2:-}
	local idx
	case "$TRANSPORT" in
	openssh) BIND=127.0.0.21 PORT_BASE=26000 ;;
	libssh2) BIND=127.0.0.22 PORT_BASE=27000 ;;
	libssh) BIND=127.0.0.23 PORT_BASE=29000 ;;
	*) echo "usage: $0 openssh|libssh2|libssh"; exit 2 ;;
	esac
	if [ ! -f "$RDHPF_PLUGIN_DIR/transport-$TRANSPORT.so" ]; then
		echo "SKIP: transport $TRANSPORT not built ($RDHPF_PLUGIN_DIR/transport-$TRANSPORT.so)"
		exit 77
	fi
	case "$SCENARIO" in
	kill_sshd) idx=1 ;; blackhole) idx=2 ;; kill_master) idx=3 ;; stale_socket) idx=4 ;;
	restart_engine) idx=5 ;; outage_start) idx=6 ;; sigterm_reconnect) idx=7 ;;
	hostkey_changed) idx=8 ;; event_lines) idx=9 ;;
	*) echo "unknown scenario $SCENARIO"; exit 2 ;;
	esac
	PORT_BASE=$((PORT_BASE + idx * 100))
	PFX=rdhpf-fault-$TRANSPORT-$SCENARIO
	FAULT_BLACKHOLE=0 FAULT_SSHD_DOWN=0 FAULT_DOCKERD_DOWN=0 FAULT_PIDS=
	c_cleanup
	trap 'fault_cleanup' EXIT
	connwatch_start
	echo "# scenario $SCENARIO, transport $TRANSPORT, forwards on $BIND, remote ports $PORT_BASE+"
}

# Put the lab back whatever happened, then the e2e cleanup (daemon, $T).
fault_cleanup() {
	local rc=$?
	[ "$FAULT_BLACKHOLE" = 1 ] && lab_blackhole_off
	[ "$FAULT_SSHD_DOWN" = 1 ] && lab_sshd_start
	[ "$FAULT_DOCKERD_DOWN" = 1 ] && lab_dockerd_start
	local p
	for p in $FAULT_PIDS; do kill "$p" 2>/dev/null || true; done
	c_cleanup
	if [ "$rc" -ne 0 ] && [ "${FAULT_FINISHED:-0}" != 1 ] && [ -f "$T/log" ]; then
		echo "--- daemon log (tail) ---"; tail -n 30 "$T/log" | cut -c1-400
	fi
	if [ "$rc" -ne 0 ] && [ -f "$T/log" ]; then
		# Keep the whole log of a failed run (CI artifacts, bug reports).
		local keep=${RDHPF_FAULTS_ARTIFACTS:-/tmp}/rdhpf-fault-$SCENARIO-$TRANSPORT.log
		cat "$T"/log* >"$keep" 2>/dev/null && echo "# full daemon log kept in $keep"
	fi
	cleanup
}

# ---- containers (docker on the lab) ----

dk() { $RDHPF_LAB_DOCKER "$@"; }
c_cleanup() {
	local ids
	ids=$(dk ps -aq --filter "name=^$PFX-" 2>/dev/null || true)
	[ -z "$ids" ] || dk rm -f $ids >/dev/null 2>&1 || true
}
c_run() { # c_run NAME DOCKER-RUN-ARGS... : detached, the lab image (httpd on 80)
	local n=$1; shift
	dk run -d --name "$PFX-$n" "$@" "$RDHPF_LAB_IMAGE" >/dev/null
}
c_rm() { dk rm -f "$PFX-$1" >/dev/null; }
# Published TCP host ports of this scenario's running containers.
c_ports() {
	dk ps --filter "name=^$PFX-" --format '{{.Ports}}' |
		grep -oE ':[0-9]+->[0-9]+/tcp' | sed -E 's/^:([0-9]+)->.*/\1/' | sort -un | tr '\n' ' '
}
port() { echo $((PORT_BASE + $1)); }

# ---- probes ----

serves() { $PROBE once "$BIND" "$@" >/dev/null; }
refuses() { ! serves "$@"; }
# all_serve: every port of every running scenario container serves (and
# there is at least one).
all_serve() {
	local ps
	ps=$(c_ports)
	[ -n "$ps" ] || { echo "no running containers with published ports"; return 1; }
	# shellcheck disable=SC2086
	$PROBE once "$BIND" $ps
}
now_ns() { date +%s%N; }
ms_since() { echo $((($(now_ns) - $1) / 1000000)); }

# recover T0_NS TIMEOUT_S: wait until every running container's ports serve;
# sets R_RECOVERY to the milliseconds since T0_NS; fails after TIMEOUT_S.
recover() {
	local t0=$1 timeout=$2 ps out
	ps=$(c_ports)
	# shellcheck disable=SC2086
	if out=$(PROBE_T0_NS=$t0 $PROBE wait "$BIND" "$timeout" $ps); then
		R_RECOVERY=$out
		echo "# recovery: every port serving $out ms after the fault was lifted (ports: $ps)"
		return 0
	fi
	R_RECOVERY=-1
	echo "# recovery: not within ${timeout}s: $out"
	return 1
}

# ---- the daemon ----

fault_config() { # fault_config [EXTRA INI LINES]; KH= overrides known_hosts
	cat >"$T/config.ini" <<C
[host "lab"]
url = $RDHPF_LAB_URL
identity_file = $RDHPF_LAB_KEY
known_hosts = ${KH:-$RDHPF_LAB_KNOWN_HOSTS}
transport = $TRANSPORT
runtime = docker
bind_address = $BIND
keepalive_interval = 1s
keepalive_count = 3
backoff_initial = 100ms
backoff_max = 1s
health_interval = 1s
connect_timeout = 3s
breaker_cooldown = 3s
${1:-}
C
}

st() { # st PYEXPR: evaluate over the status JSON (st = all, h = the host);
	# prints nothing when the daemon does not answer
	{ "$RDHPF_BIN" status --runtime-dir "$T/run" --format json 2>/dev/null || true; } |
		$PY -c 'import json,sys
try:
    st = json.load(sys.stdin); h = st["hosts"][0]
except ValueError:
    sys.exit(0)
print(eval(sys.argv[1]))' "$1" || true
}
state_is() { [ "$(st 'h["state"]')" = "$1" ]; }
state_not() { local s; s=$(st 'h["state"]') && [ -n "$s" ] && [ "$s" != "$1" ]; }
metric() { # metric NAME: the value of rdhpf_NAME for the host (0 if absent)
	{ "$RDHPF_BIN" metrics --runtime-dir "$T/run" 2>/dev/null || true; } |
		awk -v n="rdhpf_$1" '$1 ~ "^"n"\\{" || $1 == n { v = $2 } END { print v + 0 }'
}

fault_start() { # start the daemon and wait until the host is steady
	start_daemon --config "$T/config.ini" "$@"
	check "daemon up and steady within 10 s" wait_for 10000 state_is steady
}

alive() { [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; }
# check_alive [WHEN]: rdhpf must never exit.  If it did, nothing after
# means much: say how it ended and go to the end.
check_alive() {
	if alive; then
		ok "rdhpf still running${1:+ ($1)}"
		return 0
	fi
	local rc=0
	wait "$DAEMON_PID" 2>/dev/null || rc=$?
	not_ok "rdhpf still running${1:+ ($1)}: it EXITED with status $rc$([ "$rc" -gt 128 ] && echo " (signal $((rc - 128)))")"
	echo "--- last lines of its stderr ---"; tail -n 5 "$T/log" | cut -c1-300
	DAEMON_PID=
	R_NOTE="${R_NOTE:+$R_NOTE, }rdhpf exited ($rc)"
	fault_end
}

# ---- counts ----
# The lab sshd logs every connection with the client's port; connwatch.py
# records the local ports of the TCP connections our processes (anything
# whose command line names our runtime dir: rdhpf, its ssh masters) hold to
# sshd.  So sshd's lines split into ours and those of other clients of the
# lab (other tests, other engineers), which are reported but not counted.

connwatch_start() {
	: >"$T/myports"
	$PY "$FAULTS_DIR/connwatch.py" "$T/run" "$RDHPF_LAB_ADDR" "$RDHPF_LAB_PORT" "$T/myports" 900 &
	FAULT_PIDS="$FAULT_PIDS $!"
}
conn_mark() { SSHD_OFF=$(stat -c %s "$RDHPF_LAB_SSHD_LOG"); }
# sshd_ports PATTERN: client ports of the sshd log lines since conn_mark
# that match PATTERN.
sshd_ports() {
	sleep 0.05 # connwatch samples every 20 ms
	tail -c +$((SSHD_OFF + 1)) "$RDHPF_LAB_SSHD_LOG" | grep -a -- "$1" |
		sed -n 's/.* from [0-9.]* port \([0-9]*\).*/\1/p' || true
}
# ours_of PATTERN: sets OURS to how many of those lines are ours, OTHERS
# to the rest.
ours_of() {
	local p
	OURS=0 OTHERS=0
	for p in $(sshd_ports "$1"); do
		if grep -qx "$p" "$T/myports"; then OURS=$((OURS + 1)); else OTHERS=$((OTHERS + 1)); fi
	done
}
# SSH connections sshd accepted (authenticated) since conn_mark: ours.
conn_delta() { ours_of 'Accepted publickey'; echo "$OURS"; }
# TCP connections sshd saw since conn_mark (accepted or not): ours.
att_delta() { ours_of "Connection from $RDHPF_LAB_HOST_ADDR port"; echo "$OURS"; }
# check_conns MAX: sshd accepted at most MAX of our connections since conn_mark.
check_conns() {
	[ -z "${FAULTS_DEBUG:-}" ] || echo "# our client ports: $(tr "\n" " " <"$T/myports"); accepted since the mark: $(sshd_ports "Accepted publickey" | tr "\n" " ")"
	local n
	ours_of 'Accepted publickey'
	n=$OURS
	R_CONNS=$n
	echo "# SSH connections the lab sshd accepted from rdhpf since the fault: $n (bound $1)" \
		"$([ "$OTHERS" -gt 0 ] && echo "; from other clients of the lab meanwhile: $OTHERS (not counted)")"
	check "SSH connections bounded ($n <= $1)" test "$n" -le "$1"
}
log_count() { local n; n=$(grep -c -- "$1" "$T/log" || true); echo "${n:-0}"; }

# detect_down T0_NS TIMEOUT_MS: wait until the daemon counts the link as
# lost (rdhpf_disconnects_total above its value at down_mark); sets
# R_DETECT (ms since T0_NS).  The log cannot be used for this: a repeated
# warning is summarised, not printed again.
disconnects_above() { [ "$(metric disconnects_total)" -gt "$1" ]; }
detect_down() {
	local t0=$1 timeout=$2
	if wait_for "$timeout" disconnects_above "$DOWN_BASE"; then
		R_DETECT=$(ms_since "$t0")
		echo "# link loss detected $R_DETECT ms after the fault"
		return 0
	fi
	R_DETECT=-1
	return 1
}
down_mark() { DOWN_BASE=$(metric disconnects_total); }

check_gap() { # check_gap DESCRIPTION CMD...: a known gap unless strict
	local d=$1; shift
	if "$@"; then
		ok "$d"
	elif [ "${RDHPF_FAULTS_STRICT:-0}" = 1 ]; then
		not_ok "$d"
	else
		echo "GAP  - $d"; gaps=$((gaps + 1))
	fi
}

# ---- lab faults that must be undone on exit ----

sshd_down() { FAULT_SSHD_DOWN=1; lab_sshd_stop; }
sshd_up() { lab_sshd_start; FAULT_SSHD_DOWN=0; }
blackhole_on() { FAULT_BLACKHOLE=1; lab_blackhole_on; }
blackhole_off() { lab_blackhole_off; FAULT_BLACKHOLE=0; }

# The ssh master (openssh) of our daemon: its pid, from the process table.
master_pid() { pgrep -f "^ssh -M -N -S $T/run/" | head -n1; }

# ---- the end ----

fault_end() {
	local bytes
	bytes=$(cat "$T"/log* 2>/dev/null | wc -c)
	check "log stays within $LOG_MAX bytes ($bytes)" test "$bytes" -le "$LOG_MAX"
	if [ -n "$DAEMON_PID" ]; then
		check_alive "at the end"
	fi
	if alive; then
		local t0 rc=0 took
		t0=$(now_ns)
		stop_daemon || rc=$?
		took=$(ms_since "$t0")
		check "SIGTERM: exit 0 (got $rc) within 2 s (took $took ms)" test "$rc" -eq 0 -a "$took" -lt 2000
		check "no ssh process of ours remains" bash -c "! pgrep -f '^ssh .*$T/run' >/dev/null"
		local left; left=$(ls -A "$T/run" 2>/dev/null | tr "\n" " ")
		check "runtime dir empty${left:+ (left: $left)}" test -z "$left"
	fi
	echo "RESULT scenario=$SCENARIO transport=$TRANSPORT recovery_ms=$R_RECOVERY detect_ms=$R_DETECT" \
		"ssh_conns=$R_CONNS log_bytes=$bytes gaps=$gaps fails=$fails${R_NOTE:+ note=\"$R_NOTE\"}"
	FAULT_FINISHED=1
	finish
}
