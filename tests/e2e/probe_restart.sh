#!/usr/bin/env bash
# reconnect_probe: a connect that has waited while the host's port did not
# answer is started anew the moment the port accepts — also when it is the
# one trial a half-open circuit breaker allows, which must not wedge the
# host (the restarted trial is the same trial: no second breaker_allow).
# The fake transport's connect hangs; a real local port stands for sshd.
. "$(dirname "$0")/lib.sh"

PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$T/config.ini" <<C
[host "w"]
url = ssh://tester@127.0.0.1:$PORT
transport = fake
runtime = fake
hang_connect = yes
connect_timeout = 300ms
backoff_initial = 10ms
breaker_threshold = 1
breaker_cooldown = 500ms
state_file = $T/state
C
start_daemon --config "$T/config.ini"
calls() { sed -n 's/^connect_calls //p' "$T/state" 2>/dev/null || echo 0; }
state_is() {
	[ "$("$RDHPF_BIN" status --runtime-dir "$T/run" --format json 2>/dev/null |
		$PY -c 'import json, sys; print(json.load(sys.stdin)["hosts"][0]["state"])' 2>/dev/null)" = "$1" ]
}
connecting_for() { # the host has been connecting for $1 ms (within 15 s)
	local t_end=$(($(date +%s%N) + 15000000000)) since=0
	while [ "$(date +%s%N)" -lt "$t_end" ]; do
		if state_is connecting; then
			[ "$since" = 0 ] && since=$(date +%s%N)
			[ $((($(date +%s%N) - since) / 1000000)) -ge "$1" ] && return 0
		else
			since=0
		fi
		sleep 0.05
	done
	return 1
}
check "the first connect failed and opened the breaker" \
	wait_for 8000 bash -c "grep -q 'circuit breaker open' '$T/log'"
check "the breaker's trial connect has waited 1 s" connecting_for 1000
$PY -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(__import__("sys").argv[1]))); s.listen(50); s.settimeout(0.2)
end = time.time() + 20
while time.time() < end:
    try:
        c, _ = s.accept(); c.close()
    except OSError:
        pass' "$PORT" &
listener=$!
check "the port accepts: the waiting trial is started anew" \
	wait_for 3000 bash -c "grep -q 'connecting anew' '$T/log'"
n=$(calls)
check "the host is not wedged: connects go on ($n so far)" \
	wait_for 10000 bash -c "[ \"\$(sed -n 's/^connect_calls //p' '$T/state')\" -gt $n ]"
kill "$listener" 2>/dev/null || true
stop_daemon
finish
