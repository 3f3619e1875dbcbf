#!/usr/bin/env bash
# The openssh transport against the lab's sshd, driven by tests/e2e/tdriver
# (one plugin instance on the core's loop; --supervise reconnects and re-adds
# forwards the way the core's supervisor does).  Acceptance items of the
# transport:
#   1. forwards serve; exec and open_unix work; a taken port is ADDRINUSE
#   2. kill -9 of the master: seen in < 1 s, reconnected, forwards restored
#   3. a stale control socket at the ControlPath is removed at start; a
#      live one of another process is left alone (another name is used)
#   4. wrong known_hosts: stays disconnected with "host key mismatch" naming
#      the host, retried, nothing written to any known_hosts
#   5. 50 forward add/remove cycles + 20 commands: exactly one
#      "Accepted publickey" (one TCP connection), clean "disconnected by user"
#      at the end, no ssh left, control socket removed
#   6. the driver killed with SIGKILL: its master does not outlive it
#   7. an unresponsive server (our own sshd session frozen with SIGSTOP, so
#      other lab users are not disturbed): the liveness probes through the
#      master go unanswered and the link is reported down within interval x
#      (count + 1)
# Needs root (exit 77 otherwise).  meson passes RDHPF_TDRIVER and
# RDHPF_PLUGIN_DIR; by hand they default to build/.
set -euo pipefail

here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=tests/lab/lib.sh
source "$root/tests/lab/lib.sh"
lab_require

TDRIVER=${RDHPF_TDRIVER:-$root/build/tests/e2e/tdriver}
PLUGDIR=${RDHPF_PLUGIN_DIR:-$root/build/plugins}
if [[ ! -x "$TDRIVER" || ! -f "$PLUGDIR/transport-openssh.so" ]]; then
	echo "FAIL: need $TDRIVER and $PLUGDIR/transport-openssh.so (build first)"
	exit 1
fi

T=$(mktemp -d /tmp/rdhpf-ossh.XXXXXX)
chmod 700 "$T"
RUN=$T/run
mkdir -m 700 "$RUN"
HTTPD_PID=
DRV_PID=
BUSY_PID=
SOCAT_PID=
cleanup() {
	local p
	for p in "$DRV_PID" "$HTTPD_PID" "$BUSY_PID" "$SOCAT_PID"; do
		if [[ -n "$p" ]]; then kill -KILL "$p" 2>/dev/null || true; fi
	done
	# whatever ssh a failure left behind (only ours: they name our dir)
	pkill -KILL -f -- "-S $RUN/" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT

fails=0
ok() { echo "ok   - $*"; }
not_ok() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION CMD...
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((10#$t / 1000))
}

drv() { # drv [tdriver options] [commands]: the common options first
	exec "$TDRIVER" --plugin-dir "$PLUGDIR" --url "$RDHPF_LAB_URL" --identity "$RDHPF_LAB_KEY" \
		--known-hosts "$RDHPF_LAB_KNOWN_HOSTS" --runtime-dir "$RUN" \
		--keepalive 1000 --keepalive-count 3 --connect-timeout 5000 "$@"
}

drv_bg() { # drv_bg NAME [args]: run in the background, stdout NAME.out, stderr NAME.err
	local name=$1
	shift
	(drv "$@") </dev/null >"$T/$name.out" 2>"$T/$name.err" &
	DRV_PID=$! # the subshell execs tdriver: this is its pid
}

drv_wait() { # wait for the background driver to exit (bounded)
	local i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$DRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait "$DRV_PID" 2>/dev/null || true
	DRV_PID=
}

has_line() { grep -Eq -- "$2" "$1"; }
wait_line() { # wait_line FILE REGEX TIMEOUT_S
	lab_wait_for "$3" has_line "$1" "$2"
}
line_ms() { # the t= of the first line matching REGEX in FILE
	{ grep -E -m1 -- "$2" "$1" || true; } | sed -E 's/^t=([0-9]+) .*/\1/'
}

http_ok() { lab_http_ok 127.0.0.1 "$1"; }
http_fails() { ! lab_http_ok 127.0.0.1 "$1"; }

master_of() { # the ssh master: the driver's child
	{ pgrep -P "$1" || true; } | head -n1
}

our_ssh_count() {
	pgrep -c -f -- "-S $RUN/" 2>/dev/null || true
}

no_ssh_left() {
	[[ "$(our_ssh_count)" == 0 ]]
}

run_dir_empty() {
	[[ -z "$(ls -A "$RUN")" ]]
}

dump() {
	local f
	for f in "$@"; do
		echo "--- $f"
		tail -n 30 "$T/$f" 2>/dev/null || true
	done
}

# A service inside the lab, reachable only from the remote side.
mkdir -p "$T/www"
echo "hello from the lab" >"$T/www/index.html"
RPORT=$((18600 + RANDOM % 300))
# exec: $! is httpd itself (nsenter execs it), so cleanup stops it, and it
# holds none of our output open (meson waits for that).
(exec nsenter --net="$RDHPF_LAB_NETNS_PATH" busybox httpd -f -p "127.0.0.1:$RPORT" -h "$T/www") \
	</dev/null >/dev/null 2>&1 &
HTTPD_PID=$!
lab_wait_for 5 lab_ns_http_ok 127.0.0.1 "$RPORT"

# ---- 1. basics -----------------------------------------------------------
P1=$(free_port)
P2=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(30)' "$P2" \
	</dev/null >/dev/null 2>&1 &
BUSY_PID=$!
sleep 0.2
drv_bg basic connect health "add 127.0.0.1:$P1:127.0.0.1:$RPORT" \
	"add 127.0.0.1:$P1:127.0.0.1:$RPORT" "print added" "wait-file $T/basic.go" \
	"remove 127.0.0.1:$P1:127.0.0.1:$RPORT" "remove 127.0.0.1:$P1:127.0.0.1:$RPORT" \
	"print removed" "wait-file $T/basic.go2" \
	"add 127.0.0.1:$P2:127.0.0.1:$RPORT" \
	"exec printf 'a b\n'; echo oops >&2; exit 7" \
	"execin ping|head -n1" \
	"unix $RDHPF_LAB_DOCKER_SOCK GET /_ping HTTP/1.0\r\n\r\n" \
	"unix /nonexistent/rdhpf.sock GET / HTTP/1.0\r\n\r\n" quit
wait_line "$T/basic.out" 'print added' 10 || true
check "connect succeeds" has_line "$T/basic.out" '^t=[0-9]+ connect OK'
check "health check answers" has_line "$T/basic.out" '^t=[0-9]+ health OK'
check "forward added, and added again (idempotent)" \
	[ "$(grep -Ec '^t=[0-9]+ add OK' "$T/basic.out")" = 2 ]
check "forward serves the lab's service" lab_wait_for 3 http_ok "$P1"
touch "$T/basic.go"
wait_line "$T/basic.out" 'print removed' 10 || true
check "forward removed, and removed again (idempotent)" \
	[ "$(grep -Ec '^t=[0-9]+ remove OK' "$T/basic.out")" = 2 ]
check "removed forward no longer listens" http_fails "$P1"
touch "$T/basic.go2"
drv_wait
kill "$BUSY_PID" 2>/dev/null || true
check "taken local port is ADDRINUSE with the master's message" \
	has_line "$T/basic.out" "add ERR ADDRINUSE .*Port forwarding failed.*$P2 is already in use"
check "exec: stdout, exit code, stderr tail" \
	has_line "$T/basic.out" 'exec OK .* exit=7 bytes=4 first="a b" stderr=oops'
check "exec: stream_write reaches stdin" has_line "$T/basic.out" 'execin OK .* exit=0 .*first="ping"'
check "open_unix reaches the remote docker socket" \
	has_line "$T/basic.out" 'unix OK .* first="HTTP/1.[01] 200 OK"'
check "open_unix to a missing remote socket fails as REMOTE" \
	has_line "$T/basic.out" 'unix ERR REMOTE .*nonexistent/rdhpf.sock'
check "driver ended with no child left" has_line "$T/basic.out" 'bye children=0'
check "no ssh of ours left" no_ssh_left
check "control socket removed" run_dir_empty

# ---- 2. kill -9 of the master --------------------------------------------
P1=$(free_port)
P2=$(free_port)
drv_bg kill --supervise --backoff 100 --log-level info connect \
	"add 127.0.0.1:$P1:127.0.0.1:$RPORT" "add 127.0.0.1:$P2:127.0.0.1:$RPORT" \
	"print ready" "wait-down 30000" "wait-up 10000" "wait-file $T/kill.done" health stats quit
if wait_line "$T/kill.out" 'print ready' 10; then
	check "forward serves before the kill" lab_wait_for 3 http_ok "$P1"
	M1=$(master_of "$DRV_PID")
	CTL=$(sed -nE 's/.*msg="ssh master starting".* control_path=([^ ]+).*/\1/p' "$T/kill.err" | head -n1)
	check "control socket is in the private runtime dir" [ -S "$CTL" ]
	check "control path fits macOS sun_path with ssh's 17-byte suffix" [ $((${#CTL} + 17)) -le 103 ]
	t_kill=$(now_ms)
	kill -KILL "$M1"
	wait_line "$T/kill.out" '^t=[0-9]+ down ' 5 || true
	t_down=$(line_ms "$T/kill.out" '^t=[0-9]+ down ')
	echo "# master $M1 killed at $t_kill, down reported at ${t_down:-never}"
	dt=$((${t_down:-99999999999999} - t_kill))
	check "master death seen in < 1 s (${dt} ms)" [ "$dt" -lt 1000 ]
	check "down names the cause" has_line "$T/kill.out" 'down CLOSED ssh master .*signal 9'
	wait_line "$T/kill.out" 'restored n=2' 10 || true
	check "reconnected with both forwards restored" has_line "$T/kill.out" 'restored n=2'
	check "restored forward 1 serves" lab_wait_for 3 http_ok "$P1"
	check "restored forward 2 serves" lab_wait_for 3 http_ok "$P2"
	M2=$(master_of "$DRV_PID")
	new_master() { [[ -n "$M2" && "$M2" != "$M1" ]]; }
	check "a new master runs (pid ${M2:-none})" new_master
	check "same control path reused (stale one cleaned)" [ -S "$CTL" ]
else
	not_ok "driver did not get ready"
fi
touch "$T/kill.done"
drv_wait
check "health after reconnect" has_line "$T/kill.out" 'health OK'
check "exactly two masters started" has_line "$T/kill.out" 'stat ssh_masters_started_total 2$'
check "no ssh of ours left" no_ssh_left
check "control socket removed" run_dir_empty

# ---- 3. stale and foreign control sockets ---------------------------------
if [[ -n "${CTL:-}" ]]; then
	python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$CTL"
	check "a stale socket sits at the control path" [ -S "$CTL" ]
	(drv --log-level info connect health quit) >"$T/stale.out" 2>"$T/stale.err" || true
	check "stale control socket detected and removed" \
		has_line "$T/stale.err" "removed a stale control socket.*path=$CTL"
	check "master started on the same path" \
		has_line "$T/stale.err" "ssh master starting.*control_path=$CTL( |$)"
	check "connect succeeds after the stale socket" has_line "$T/stale.out" 'connect OK'
	check "control socket removed after" run_dir_empty

	socat "UNIX-LISTEN:$CTL,fork" /dev/null </dev/null >/dev/null 2>&1 &
	SOCAT_PID=$!
	lab_wait_for 3 test -S "$CTL"
	(drv --log-level info connect health quit) >"$T/foreign.out" 2>"$T/foreign.err" || true
	check "live foreign socket left alone" has_line "$T/foreign.err" "in use by another live process.*path=$CTL"
	check "another name used" has_line "$T/foreign.err" "control_path=${CTL%.sock}-1.sock"
	check "connect succeeds beside a foreign socket" has_line "$T/foreign.out" 'connect OK'
	check "the foreign socket still exists" [ -S "$CTL" ]
	kill "$SOCAT_PID" 2>/dev/null || true
	wait "$SOCAT_PID" 2>/dev/null || true
	rm -f "$CTL"
fi

# ---- 4. wrong known_hosts -------------------------------------------------
sum_before=$(md5sum "$RDHPF_LAB_KNOWN_HOSTS_WRONG" "$RDHPF_LAB_KNOWN_HOSTS" | md5sum)
user_kh=$HOME/.ssh/known_hosts
user_before=$( [[ -e "$user_kh" ]] && md5sum "$user_kh" || echo absent)
"$TDRIVER" --plugin-dir "$PLUGDIR" --url "$RDHPF_LAB_URL" --identity "$RDHPF_LAB_KEY" \
	--known-hosts "$RDHPF_LAB_KNOWN_HOSTS_WRONG" --runtime-dir "$RUN" --supervise --backoff 200 \
	connect "sleep 1500" health quit >"$T/hk.out" 2>"$T/hk.err" || true
check "connect fails as HOSTKEY: host key mismatch naming the host" \
	has_line "$T/hk.out" "connect ERR HOSTKEY .*host key mismatch for $RDHPF_LAB_ADDR:$RDHPF_LAB_PORT"
check "retried, and still refused" \
	[ "$(grep -Ec "reconnect ERR HOSTKEY .*host key mismatch for $RDHPF_LAB_ADDR" "$T/hk.out")" -ge 2 ]
check "stays disconnected" has_line "$T/hk.out" 'health ERR NOTCONN'
check "no known_hosts file changed" [ "$(md5sum "$RDHPF_LAB_KNOWN_HOSTS_WRONG" "$RDHPF_LAB_KNOWN_HOSTS" | md5sum)" = "$sum_before" ]
check "user's known_hosts untouched" [ "$( [[ -e "$user_kh" ]] && md5sum "$user_kh" || echo absent)" = "$user_before" ]
check "no ssh of ours left" no_ssh_left

# ---- 5. one TCP connection for 50 forward cycles and 20 commands ----------
P1=$(free_port)
log_off=$(stat -c %s "$RDHPF_LAB_SSHD_LOG")
drv_bg one --log-level info connect "print ready" "wait-file $T/one.go" \
	"bench 50 127.0.0.1:$P1:127.0.0.1:$RPORT" "execs 20 true" \
	"add 127.0.0.1:$P1:127.0.0.1:$RPORT" "print added" "wait-file $T/one.go2" stats quit
PORT_SRC=
if wait_line "$T/one.out" 'print ready' 10; then
	M=$(master_of "$DRV_PID")
	PORT_SRC=$(ss -tnpH state established "dst $RDHPF_LAB_ADDR" 2>/dev/null |
		awk -v pid="pid=$M," 'index($0, pid) { n = split($3, a, ":"); print a[n]; exit }')
	echo "# master $M, source port ${PORT_SRC:-unknown}"
	touch "$T/one.go"
	wait_line "$T/one.out" 'print added' 30 || true
	check "forward serves after 50 cycles" lab_wait_for 3 http_ok "$P1"
	touch "$T/one.go2"
else
	not_ok "driver did not get ready"
	touch "$T/one.go" "$T/one.go2"
fi
drv_wait
sleep 0.3 # sshd writes its disconnect line
check "50 add/remove cycles done" has_line "$T/one.out" 'bench add n=50 '
check "20 commands done" has_line "$T/one.out" 'execs n=20 '
check "exactly one ssh process was ever started" has_line "$T/one.out" 'stat ssh_masters_started_total 1$'
period=$(tail -c +$((log_off + 1)) "$RDHPF_LAB_SSHD_LOG")
accepted=$(grep -c 'Accepted publickey' <<<"$period" || true)
ours=0
if [[ -n "$PORT_SRC" ]]; then
	ours=$(grep -c "Accepted publickey .* port $PORT_SRC ssh2" <<<"$period" || true)
fi
echo "# Accepted publickey in the period: $accepted (ours, port ${PORT_SRC:-?}: $ours)"
if [[ "$accepted" != "$ours" ]]; then
	# Other lab users may connect meanwhile; a second connection of ours is
	# impossible without a second ssh process, which the count above rules out.
	echo "# other connections in the period (not ours):"
	grep 'Accepted publickey' <<<"$period" | grep -v " port $PORT_SRC ssh2" | sed 's/^/#   /' || true
fi
check "exactly one Accepted publickey for our connection" [ "$ours" = 1 ]
check "clean end: mux terminate, 'disconnected by user'" \
	grep -q "Received disconnect from .* port $PORT_SRC:11: disconnected by user" <<<"$period"
check "driver ended with no child left" has_line "$T/one.out" 'bye children=0'
check "no ssh of ours left" no_ssh_left
check "control socket removed" run_dir_empty

# ---- 6. the driver dies by SIGKILL: no orphan master ----------------------
drv_bg orphan connect "print ready" "sleep 30000" quit
if wait_line "$T/orphan.out" 'print ready' 10; then
	M=$(master_of "$DRV_PID")
	kill -KILL "$DRV_PID"
	wait "$DRV_PID" 2>/dev/null || true
	DRV_PID=
	gone() { ! kill -0 "$M" 2>/dev/null || [[ "$(ps -o stat= -p "$M" 2>/dev/null)" == Z* ]]; }
	check "master exits when its parent is SIGKILLed (pdeathsig)" lab_wait_for 3 gone
	check "its control socket is removed" lab_wait_for 3 run_dir_empty
else
	not_ok "driver did not get ready"
fi

# ---- 7. unresponsive server: keepalive -----------------------------------
drv_bg ka --keepalive 1000 --keepalive-count 2 connect "print ready" "wait-down 15000" quit
if wait_line "$T/ka.out" 'print ready' 10; then
	M=$(master_of "$DRV_PID")
	sport=$(ss -tnpH state established "dst $RDHPF_LAB_ADDR" 2>/dev/null |
		awk -v pid="pid=$M," 'index($0, pid) { n = split($3, a, ":"); print a[n]; exit }')
	mapfile -t SPIDS < <(lab_ns ss -tnpH state established "( sport = :$RDHPF_LAB_PORT and dport = :${sport:-0} )" |
		grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
	if ((${#SPIDS[@]})); then
		t_stop=$(now_ms)
		kill -STOP "${SPIDS[@]}"
		wait_line "$T/ka.out" '^t=[0-9]+ down ' 8 || true
		kill -CONT "${SPIDS[@]}" 2>/dev/null || true
		t_down=$(line_ms "$T/ka.out" '^t=[0-9]+ down ')
		dt=$((${t_down:-99999999999999} - t_stop))
		echo "# sshd session ${SPIDS[*]} frozen at $t_stop; down after ${dt} ms"
		check "frozen server detected within interval x (count + 1) = 3 s (+0.5 s slack)" [ "$dt" -le 3500 ]
		# Found by the plugin's liveness probes through the master (before
		# ssh's ServerAlive, which would say "not responding").
		check "down says sshd stopped answering the liveness probes" \
			has_line "$T/ka.out" 'down TIMEOUT .*sshd at .* through the ssh master: no answer for .*probes unanswered.*the link is dead'
	else
		not_ok "could not find our sshd session process"
	fi
else
	not_ok "driver did not get ready"
fi
drv_wait
check "no ssh of ours left" no_ssh_left

if ((fails)); then
	dump basic.out kill.out kill.err stale.err foreign.err hk.out one.out one.err orphan.out ka.out ka.err
	echo "FAILED: $fails"
	exit 1
fi
echo "all passed"
