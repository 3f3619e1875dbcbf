#!/usr/bin/env bash
# Fault: containers change while the link is down.  sshd is stopped; during
# the outage one container starts and another is removed; sshd comes back
# after 3 s.  The reconnect must re-list (the list is the truth): the new
# container is forwarded, the removed one's forward is gone, the untouched
# one serves again.  (The predecessor never re-listed after a reconnect:
# containers started during a reconnect never got a forward.)
#   outage_start.sh openssh|libssh2|libssh
. "$(dirname "$0")/lib.sh"
fault_init outage_start "${1:-}"

fwd_hasnt() { [ "$(st "any(f['local_port'] == $1 for f in h['forwards'])")" = False ]; }

c_run old -p "$(port 1)":80
c_run gone -p "$(port 2)":80
fault_config
fault_start
check "before the fault: every port serves" wait_for 5000 all_serve

conn_mark; down_mark
t0=$(now_ns)
sshd_down
check "outage seen within 5 s" detect_down "$t0" 5000
c_run new -p "$(port 3)":80 -p "$(port 4)":80
c_rm gone
while [ "$(ms_since "$t0")" -lt 3000 ]; do sleep 0.05; done
check_alive "during the outage"
sshd_up
t1=$(now_ns)
check "every running container's ports serve within 10 s (the new one's too)" recover "$t1" 10
check "the container removed during the outage has no forward" wait_for 3000 fwd_hasnt "$(port 2)"
check "and its port does not serve" refuses "$(port 2)"
check "host steady" wait_for 3000 state_is steady
check "status lists the new container's forwards as active" \
	test "$(st "sum(f['state'] == 'active' and f['container'] == '$PFX-new' for f in h['forwards'])")" = 2
check_conns 2
fault_end
