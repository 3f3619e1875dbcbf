#!/usr/bin/env bash
# Fault: sshd dies (listener and every session: established connections
# drop) and comes back 3 s later.  Every forward must serve again soon after
# sshd is back, over one new SSH connection.
#   kill_sshd.sh openssh|libssh2|libssh
. "$(dirname "$0")/lib.sh"
fault_init kill_sshd "${1:-}"

c_run a -p "$(port 1)":80
c_run b -p "$(port 2)":80 -p "$(port 3)":80
fault_config
fault_start
check "before the fault: every port serves" wait_for 5000 all_serve

conn_mark; down_mark
t0=$(now_ns)
sshd_down
check "outage seen (link down logged) within 5 s" detect_down "$t0" 5000
while [ "$(ms_since "$t0")" -lt 3000 ]; do sleep 0.05; done
check_alive "during the outage"
sshd_up
t1=$(now_ns)
check "every running container's ports serve again within 10 s" recover "$t1" 10
echo "# (design target: all forwards serving <= 1 s after sshd is back; backoff_max here is 1s)"
check "host steady again" wait_for 3000 state_is steady
check_conns 2
check "reconnects counted in status (>= 1)" test "$(st 'h["reconnects"]')" -ge 1
check "the reconnect started when the port accepted again (reconnect_probe)" \
	test "$(log_count 'port accepts again: connecting')" -ge 1
fault_end
