#!/usr/bin/env bash
# The ABI 2.0 runtime contract end to end on the fake plugins:
#  - a poll-only runtime (fake-poll: no watch) is listed every
#    poll_interval; a container that starts is forwarded, one that stops
#    loses its forward, one that stays is never touched again;
#  - a runtime that never confirms its event stream (on_established) is
#    given up after connect_timeout, with the reason in the log and status;
#  - rules match the image and labels a runtime reports (container builder).
. "$(dirname "$0")/lib.sh"

# ---- poll-only ----
# p3 starts, and then p2 stops, when the test says so (file:): each after
# the test has seen the forwards before it, however slow the run.
cat >"$T/script" <<S
0     start p1aaaaaaaaaa steady 18201:80 18253:53/udp
0     start p2bbbbbbbbbb goes 18202:80
file:$T/p3-go start p3cccccccccc late 18203:80
file:$T/p2-go stop p2bbbbbbbbbb
S
cat >"$T/poll.ini" <<C
[host "poll"]
url = ssh://t@poll.invalid
transport = fake
runtime = fake-poll
poll_interval = 200ms
state_file = $T/state
script = $T/script
bind_address = 127.0.0.1
C
has() { grep -qx "$1" "$T/state"; }
hasnt() { ! grep -qx "$1" "$T/state"; }

out=$("$RDHPF_BIN" check-config --runtime-dir "$T/run" "$T/poll.ini" 2>&1) || true
check "check-config prints poll_interval" grep -Eq 'poll_interval += 200ms' <<<"$out"

start_daemon --config "$T/poll.ini" --log-level debug
check "poll-only: running containers forwarded" \
	wait_for 3000 has "forward 127.0.0.1:18201 127.0.0.1:18201"
check "poll-only: second container forwarded" has "forward 127.0.0.1:18202 127.0.0.1:18202"
check "poll-only: the later container is not there before it starts" hasnt "forward 127.0.0.1:18203 127.0.0.1:18203"
touch "$T/p3-go"
check "poll-only: a container started later is forwarded at a poll" \
	wait_for 3000 has "forward 127.0.0.1:18203 127.0.0.1:18203"
touch "$T/p2-go"
check "poll-only: a container gone from the list loses its forward" \
	wait_for 3000 hasnt "forward 127.0.0.1:18202 127.0.0.1:18202"
sleep 1 # five more polls
check "poll-only: several lists ran" test "$(grep -c 'msg="synced" host=poll' "$T/log")" -ge 5
check "poll-only: the unchanged container's forward was added once and never removed" \
	bash -c "[ \$(grep -c 'forward active.*local_port=18201' '$T/log') -eq 1 ] &&
		! grep -q 'forward removed.*local_port=18201' '$T/log'"
check "poll-only: the skipped UDP port is logged once, not at every poll" \
	bash -c "[ \$(grep -c 'port=18253/udp' '$T/log') -eq 1 ] &&
		[ \$(grep -c 'remote_port=18253 proto=udp' '$T/log') -eq 1 ]"
check "poll-only: no event stream was started" eval '! grep -q "event stream" "$T/log"'
stop_daemon || true

# ---- on_established never comes ----
cat >"$T/est.ini" <<C
[host "mute"]
url = ssh://t@mute.invalid
transport = fake
runtime = fake
established = never
connect_timeout = 1s
backoff_initial = 5s
state_file = $T/state2
script = $T/script
C
start_daemon --config "$T/est.ini" --log-level debug
check "no on_established within connect_timeout: the watch is ended with a reason" \
	wait_for 4000 grep -q 'runtime did not confirm its event stream within 1 s' "$T/log"
check "... and nothing was listed or forwarded meanwhile" \
	eval '! grep -q "msg=.synced. host=mute" "$T/log" && ! grep -q "^forward " "$T/state2"'
"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/status.json" || true
check "status shows the reason as the host's last error" \
	grep -q 'runtime did not confirm its event stream' "$T/status.json"
stop_daemon || true

cat >"$T/bad.ini" <<C
[host "x"]
url = ssh://t@x.invalid
transport = fake
runtime = fake
established = sometimes
C
out=$("$RDHPF_BIN" check-config --runtime-dir "$T/run" "$T/bad.ini" 2>&1) || true
check "a value the runtime's validate_option refuses is FILE:LINE: [section] key: reason" \
	grep -q "$T/bad.ini:5: \\[host \"x\"\\] established: bad value .sometimes. (expected yes or never)" <<<"$out"

# ---- image= and label= rules ----
cat >"$T/script3" <<'S'
0 start i1aaaaaaaaaa front 18301:80 image:nginx:1.27 label:tier=web
0 start i2bbbbbbbbbb back 18302:80 image:postgres:16 label:tier=db
0 start i3cccccccccc other 18303:80
S
cat >"$T/rules.ini" <<C
[host "rules"]
url = ssh://t@rules.invalid
transport = fake
runtime = fake
state_file = $T/state3
script = $T/script3
bind_address = 127.0.0.1
rule = forward image=nginx:* port=18301-18303 -> 28301-28303
rule = forward label=tier=db port=18301-18303 -> 38301-38303
rule = ignore
C
start_daemon --config "$T/rules.ini" --log-level debug
check "rule image= matches the image the runtime reported" \
	wait_for 3000 grep -qx "forward 127.0.0.1:28301 127.0.0.1:18301" "$T/state3"
check "rule label= matches the label the runtime reported" \
	grep -qx "forward 127.0.0.1:38302 127.0.0.1:18302" "$T/state3"
check "a container without either is ignored" eval '! grep -q ":18303" "$T/state3"'
stop_daemon || true
finish
