#!/usr/bin/env bash
# Fault: the link goes silent for 30 s (iptables DROP of everything arriving
# on the lab's veth, inside the lab namespace), then comes back.  The loss
# must be detected within keepalive_interval x (keepalive_count + 1) = 4 s,
# reconnect attempts run into the void meanwhile (connect_timeout 3 s), and
# after the rule is lifted every forward serves again over one new SSH
# connection.  BLACKHOLE_S overrides the 30 s.
#   blackhole.sh openssh|libssh2|libssh
. "$(dirname "$0")/lib.sh"
fault_init blackhole "${1:-}"
hold=${BLACKHOLE_S:-30}

c_run a -p "$(port 1)":80
c_run b -p "$(port 2)":80
fault_config
fault_start
check "before the fault: every port serves" wait_for 5000 all_serve

conn_mark; down_mark
t0=$(now_ns)
blackhole_on
check "blackhole detected (link down logged) within 8 s" detect_down "$t0" 8000
# How soon is a figure (target: keepalive 1s x (3 + 1) = 4 s), printed here
# and by bench/detect; the test asserts what found the loss, not its timing.
echo "# detection took $R_DETECT ms (target 4000 ms)"
check "status shows the host not steady" wait_for 2000 state_not steady
# Found by the transport's own liveness probes (each interval unanswered is
# logged; rsdk_live counts them alike for every transport), not by a TCP
# error or, for openssh, by ssh's ServerAlive.
check "$TRANSPORT: unanswered liveness probes counted" \
	test "$(log_count 'ssh liveness probe unanswered')" -ge 1
check "$TRANSPORT: the link declared dead by the liveness probes" \
	test "$(log_count 'ssh link dead: liveness probes unanswered')" -ge 1
if [ "$TRANSPORT" = openssh ]; then
	check "openssh: not by ServerAlive" test "$(log_count 'not responding')" -eq 0
else
	check "$TRANSPORT: its session ended by the count" \
		test "$(log_count 'ssh session is dead')" -ge 1
fi
echo "# holding the blackhole for ${hold}s"
while [ "$(ms_since "$t0")" -lt $((hold * 1000)) ]; do
	alive || break
	sleep 0.2
done
check_alive "through ${hold}s of blackhole"
echo "# during the blackhole: state $(st 'h["state"]'), breaker $(st 'h["breaker"]'), $(log_count 'ssh master starting') master starts logged"
# Lift it while a connect begun under it has waited 1 s: its SYN was lost
# and would be resent only seconds later; the reconnect probe must see the
# port accept and start the connect anew (bounded: 15 s to catch one).
connecting_for() { # connecting_for MS: the host has been connecting for MS
	local t_end=$(($(now_ns) + 15000000000)) since=0
	while [ "$(now_ns)" -lt "$t_end" ]; do
		if state_is connecting; then
			[ "$since" = 0 ] && since=$(now_ns)
			[ "$(ms_since "$since")" -ge "$1" ] && return 0
		else
			since=0
		fi
		sleep 0.05
	done
	return 1
}
check "a connect under the blackhole has waited 1 s" connecting_for 1000
blackhole_off
t1=$(now_ns)
# Whether the probe restarted it depends on when that connect began
# against the probe's last unanswered try (e2e-probe_restart asserts the
# mechanism deterministically); here it is reported, not asserted.
wait_for 3000 bash -c "grep -q 'connecting anew' '$T/log'" &&
	echo "# the waiting connect was started anew when the port accepted" ||
	echo "# the waiting connect was not started anew (it began after the last unanswered probe)"
check "every running container's ports serve again within 12 s" recover "$t1" 12
echo "# (a connect started just before the lift may wait for its SYN retransmit; connect_timeout 3s, backoff_max 1s, breaker_cooldown 3s)"
check "host steady again" wait_for 3000 state_is steady
check_conns 2
fault_end
