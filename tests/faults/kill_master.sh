#!/usr/bin/env bash
# Fault: the SSH connection dies abruptly, three times.
#   openssh: kill -9 of the ControlMaster (ssh -M), our own child; its control
#            socket is left behind, stale.
#   libssh2, libssh: there is no master process; the nearest equivalent is done
#            instead: kill -9 of the lab sshd processes serving our one
#            connection (the server side of the session dies).
# Each time every forward must serve again, over exactly one new SSH
# connection, and the old master must be reaped (no zombie, no orphan).
#   kill_master.sh openssh|libssh2|libssh
. "$(dirname "$0")/lib.sh"
fault_init kill_master "${1:-}"

c_run a -p "$(port 1)":80
c_run b -p "$(port 2)":80
fault_config
fault_start
check "before the fault: every port serves" wait_for 5000 all_serve

# The lab sshd processes serving the daemon's TCP connection to sshd.
server_side_pids() {
	local lport
	lport=$(ss -Htnp state established dst "$RDHPF_LAB_ADDR:$RDHPF_LAB_PORT" 2>/dev/null |
		grep "pid=$DAEMON_PID," | awk '{ print $3 }' | sed 's/.*://' | head -n1)
	[ -n "$lport" ] || return 1
	lab_ns ss -Htnp state established "( sport = :$RDHPF_LAB_PORT and dport = :$lport )" |
		grep -oE 'pid=[0-9]+' | sed 's/pid=//' | sort -u | tr '\n' ' '
}

rounds=3 worst=0 sum=0
conn_mark
for i in $(seq $rounds); do
	down_mark
	if [ "$TRANSPORT" = openssh ]; then
		mp=$(master_pid)
		check "round $i: the master is running (pid ${mp:-none})" test -n "$mp"
		[ -n "$mp" ] || break
		ctl=$(tr '\0' ' ' <"/proc/$mp/cmdline" | sed -E 's/.* -S ([^ ]+) .*/\1/')
		t0=$(now_ns)
		kill -KILL "$mp"
	else
		sp=$(server_side_pids || true)
		check "round $i: found the sshd processes of our connection (${sp:-none})" test -n "$sp"
		[ -n "$sp" ] || break
		t0=$(now_ns)
		# shellcheck disable=SC2086
		kill -KILL $sp
	fi
	check "round $i: loss seen within 3 s" detect_down "$t0" 3000
	check "round $i: every port serves again within 8 s" recover "$t0" 8
	[ "$R_RECOVERY" -gt "$worst" ] && worst=$R_RECOVERY
	sum=$((sum + R_RECOVERY))
	check "round $i: steady" wait_for 3000 state_is steady
	if [ "$TRANSPORT" = openssh ]; then
		check "round $i: the killed master was reaped (no zombie)" \
			bash -c "! ps -o stat= -p $mp 2>/dev/null | grep -q Z"
		check "round $i: one master runs again, a new one" \
			bash -c "[ \$(pgrep -fc '^ssh -M -N -S $T/run/') -eq 1 ] && [ \"\$(pgrep -f '^ssh -M -N -S $T/run/')\" != $mp ]"
		check "round $i: the control socket is live again ($ctl)" test -S "$ctl"
	fi
	check_alive "round $i"
done
R_RECOVERY=$worst
echo "# recovery over $rounds rounds: worst $worst ms, mean $((sum / rounds)) ms"
check_conns $rounds
check "one new connection per kill, no more (got $R_CONNS for $rounds)" test "$R_CONNS" -eq $rounds
if [ "$TRANSPORT" = openssh ]; then
	check "the log says the master died of signal 9" grep -q 'ssh master exited.*signal=9' "$T/log"
fi
fault_end
