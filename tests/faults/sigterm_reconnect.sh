#!/usr/bin/env bash
# Fault: SIGTERM while the daemon is reconnecting.  It must exit 0 promptly,
# leave no ssh process behind and an empty runtime directory.
#   a. sshd is down: the daemon cycles backoff -> connecting (refused at
#      once); SIGTERM must end it within 2 s.
#   b. the link is blackholed: a connect hangs in SYN retransmits; SIGTERM
#      must end it within 2 s, at worst within connect_timeout (3 s).
#   sigterm_reconnect.sh openssh|libssh2|libssh
. "$(dirname "$0")/lib.sh"
fault_init sigterm_reconnect "${1:-}"

# term_now CASE LIMIT_MS: SIGTERM the daemon, check how it ends.
term_now() {
	local t0 rc=0 took
	t0=$(now_ns)
	kill -TERM "$DAEMON_PID" 2>/dev/null || true
	local i=0
	while alive && [ $i -lt 200 ]; do sleep 0.025; i=$((i + 1)); done
	took=$(ms_since "$t0")
	wait "$DAEMON_PID" 2>/dev/null || rc=$?
	check "$1: exit 0 on SIGTERM (got $rc)" test "$rc" -eq 0
	check "$1: exited within $2 ms (took $took ms)" test "$took" -le "$2"
	check "$1: no ssh process of ours remains" bash -c "! pgrep -f '^ssh .*$T/run' >/dev/null"
	local left; left=$(ls -A "$T/run" 2>/dev/null | tr '\n' ' ')
	check "$1: runtime dir empty${left:+ (left: $left)}" test -z "$left"
	check "$1: the forward is gone" refuses "$(port 1)"
	check "$1: the log says it stopped" grep -q 'msg="stopped"' "$T/log"
	DAEMON_PID=
	R_NOTE="${R_NOTE:+$R_NOTE, }$1 exit ${took}ms"
}
reconnecting() { case "$(st 'h["state"]')" in backoff | connecting | breaker-open) return 0 ;; esac; return 1; }

c_run a -p "$(port 1)":80
fault_config
conn_mark
fault_start
check "a: every port serves" wait_for 5000 all_serve
sshd_down
check "a: reconnecting within 5 s of sshd stopping" wait_for 5000 reconnecting
sleep 1.2
echo "# a: state when SIGTERM is sent: $(st 'h["state"]')"
term_now "a (sshd down)" 2000
sshd_up

mv "$T/log" "$T/log.a"
fault_start
check "b: every port serves" wait_for 5000 all_serve
blackhole_on
check "b: a connect is in flight in the blackhole within 10 s" wait_for 10000 state_is connecting
sleep 0.5
echo "# b: state when SIGTERM is sent: $(st 'h["state"]')"
term_now "b (blackhole, connect in flight)" 3500
blackhole_off
check_conns 2
fault_end
