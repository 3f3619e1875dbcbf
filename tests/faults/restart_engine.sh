#!/usr/bin/env bash
# Fault: dockerd restarts, twice: a crash (SIGKILL; on its way back dockerd
# stops the containers that were left running and starts again those with a
# restart policy) and a graceful restart (SIGTERM: it stops its containers
# first).  The link stays up all along, so no new SSH connection may be
# opened: the event stream is resynced over the same one.  Afterwards the
# forwards match what runs: the --restart=always container serves again,
# the one without a policy (now stopped) has no forward, and a container
# started after the restart is forwarded.
#   restart_engine.sh openssh|libssh2|libssh
. "$(dirname "$0")/lib.sh"
fault_init restart_engine "${1:-}"

fwd_has() { [ "$(st "any(f['local_port'] == $1 for f in h['forwards'])")" = True ]; }
fwd_hasnt() { [ "$(st "any(f['local_port'] == $1 for f in h['forwards'])")" = False ]; }

c_run keep --restart always -p "$(port 1)":80
c_run once -p "$(port 2)":80
fault_config
fault_start
check "before the fault: every port serves" wait_for 5000 all_serve

conn_mark
resyncs0=$(st 'h["stream"]["resyncs"]')
worst=0
for how in crash graceful; do
	if [ "$how" = crash ]; then
		FAULT_DOCKERD_DOWN=1; lab_dockerd_stop
	else
		c_run once2 -p "$(port 3)":80
		check "$how: container without a policy forwarded before" wait_for 3000 serves "$(port 3)"
		FAULT_DOCKERD_DOWN=1; lab_dockerd_stop --graceful
	fi
	check "$how: the event stream failure is seen (resync counted) within 5 s" \
		wait_for 5000 bash -c "[ \$('$RDHPF_BIN' status --runtime-dir '$T/run' --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"hosts\"][0][\"stream\"][\"resyncs\"])') -gt $resyncs0 ]"
	sleep 1
	check_alive "$how: while dockerd is down"
	ts=$(now_ns)
	lab_dockerd_start; FAULT_DOCKERD_DOWN=0
	t1=$(now_ns)
	echo "# $how: dockerd took $(ms_since "$ts") ms to start; recovery counts from when it answers"
	check "$how: the restart-policy container runs again" \
		wait_for 10000 bash -c "[ \"\$($RDHPF_LAB_DOCKER inspect -f '{{.State.Running}}' $PFX-keep)\" = true ]"
	check "$how: every running container's ports serve within 10 s of dockerd answering" recover "$t1" 10
	[ "$R_RECOVERY" -gt "$worst" ] && worst=$R_RECOVERY
	if [ "$how" = crash ]; then gone=$(port 2); else gone=$(port 3); fi
	check "$how: the stopped container's forward is gone" wait_for 5000 fwd_hasnt "$gone"
	check "$how: and its port does not serve" refuses "$gone"
	check "$how: host steady" wait_for 5000 state_is steady
	resyncs0=$(st 'h["stream"]["resyncs"]')
done
R_RECOVERY=$worst
c_run after -p "$(port 4)":80
check "a container started after the restarts is forwarded within 3 s" wait_for 3000 serves "$(port 4)"
check "every running container's ports serve" all_serve
echo "# resyncs: $(st 'h["stream"]["resyncs"]'), stream starts: $(st 'h["stream"]["starts"]'), reconnects: $(st 'h["reconnects"]')"
check_conns 0
fault_end
