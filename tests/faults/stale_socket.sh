#!/usr/bin/env bash
# Fault: stale runtime files after rdhpf itself was killed with SIGKILL (no
# cleanup ran), and a stale control socket at the ControlPath.
#   1. rdhpf is SIGKILLed: its ssh master must not outlive it as an orphan
#      holding the ports (openssh starts it under setpriv --pdeathsig).
#   2. openssh: a dangling socket file (nobody listening, as a master killed
#      with -9 leaves it) is put at the ControlPath the log named.  A new
#      rdhpf on the same runtime dir must start despite the dead daemon's
#      pid file and control socket, remove the stale ControlPath socket,
#      connect and forward.
#   3. openssh: a live socket at the ControlPath (someone else's) must be
#      left alone and the next name used.
# libssh2 and libssh have no ControlPath: steps 2-3 do not apply; step 1 and the restart
# on the stale runtime dir are run for it all the same.
#   stale_socket.sh openssh|libssh2|libssh
. "$(dirname "$0")/lib.sh"
fault_init stale_socket "${1:-}"

c_run a -p "$(port 1)":80
fault_config
fault_start
check "before the fault: every port serves" wait_for 5000 all_serve

ctl_path() { sed -n 's/.*msg="ssh master starting".* control_path=\([^ ]*\).*/\1/p' "$T/log" | tail -n1; }
kill9_daemon() {
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=
}
restart() { # restart LOGSUFFIX: keep the old log, start on the same runtime dir
	mv "$T/log" "$T/log.$1"
	conn_mark
	t0=$(now_ns)
	start_daemon --config "$T/config.ini"
	check "restarted on the stale runtime dir: steady within 10 s" wait_for 10000 state_is steady
	check "every port serves within 10 s of the restart" recover "$t0" 10
	check_conns 1
}

if [ "$TRANSPORT" = openssh ]; then
	ctl=$(ctl_path)
	mp=$(master_pid)
	echo "# master pid $mp, control path $ctl"
fi
kill9_daemon
if [ "$TRANSPORT" = openssh ]; then
	check "rdhpf SIGKILLed: its ssh master does not outlive it" \
		wait_for 3000 bash -c "! pgrep -f '^ssh .*$T/run' >/dev/null"
fi
check "rdhpf SIGKILLed: its forwards are gone" wait_for 3000 refuses "$(port 1)"
echo "# left in the runtime dir: $(ls -A "$T/run" | tr '\n' ' ')"

if [ "$TRANSPORT" = openssh ]; then
	rm -f "$ctl"
	$PY -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$ctl"
	check "a dangling socket sits at the ControlPath" test -S "$ctl"
else
	echo "# $TRANSPORT: no ControlPath; restarting on the stale runtime dir only"
fi
restart 1
if [ "$TRANSPORT" = openssh ]; then
	check "the stale control socket was detected and removed (logged with its path)" \
		grep -q "removed a stale control socket.* path=$ctl" "$T/log"
	check "the new master uses that path again" test "$(ctl_path)" = "$ctl"

	# A live socket at the ControlPath belongs to someone else: never touched.
	kill9_daemon
	wait_for 3000 bash -c "! pgrep -f '^ssh .*$T/run' >/dev/null" || true
	rm -f "$ctl"
	$PY -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); time.sleep(60)' "$ctl" &
	FAULT_PIDS="$FAULT_PIDS $!"
	wait_for 3000 test -S "$ctl" || true
	restart 2
	check "a live socket at the ControlPath is left alone (logged)" \
		grep -q "control socket in use by another live process.* path=$ctl" "$T/log"
	check "the master took the next name" bash -c "[ '$(ctl_path)' != '$ctl' ] && [ -n '$(ctl_path)' ]"
	check "the other process's socket is still there" test -S "$ctl"
	# Not ours: take it away before the end checks look at the runtime dir.
	for p in $FAULT_PIDS; do kill "$p" 2>/dev/null || true; done
	FAULT_PIDS=
	rm -f "$ctl"
	# Streamlocal sockets (NAME.uN) named after the old ControlPath, left by
	# the daemon killed last: the new one, on another name, does not know them.
	cur=$(basename "$(ctl_path)" .sock)
	stale=
	for f in "$T"/run/m-*.u[0-9]*; do
		[ -e "$f" ] || continue
		case "$(basename "$f")" in "$cur".*) ;; *) stale="$stale $(basename "$f")" ;; esac
	done
	check_gap "leftovers of the SIGKILLed daemon cleaned up by its successor (left:${stale:- none})" test -z "$stale"
	for f in $stale; do rm -f "$T/run/$f"; done
fi
fault_end
