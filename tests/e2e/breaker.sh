#!/usr/bin/env bash
# Failures never end the daemon: backoff, the breaker opens after N
# failures, a hanging connect is cut by the watchdog, and an outage does not
# flood the log (the predecessor wrote 4.2 GB).
. "$(dirname "$0")/lib.sh"

cat >"$T/config.ini" <<C
[host "flaky"]
url = ssh://tester@remote.invalid
transport = fake
runtime = fake
fail_connects = 100000
backoff_initial = 10ms
backoff_max = 20ms
backoff_jitter = 0
breaker_threshold = 1000
state_file = $T/state

[host "broken"]
url = ssh://tester@remote2.invalid
transport = fake
runtime = fake
fail_connects = 100000
backoff_initial = 10ms
backoff_max = 10ms
breaker_threshold = 3
breaker_cooldown = 500ms

[host "hangs"]
url = ssh://tester@remote3.invalid
transport = fake
runtime = fake
hang_connect = yes
connect_timeout = 300ms
backoff_initial = 10ms
C
start_daemon --config "$T/config.ini"
sleep 4
check "still running after thousands of failures" kill -0 "$DAEMON_PID"
check "breaker opened for host 'broken'" grep -q 'circuit breaker open.*host=broken' "$T/log"
check "hanging connect cut by the watchdog" grep -q 'host=hangs.*connect did not finish' "$T/log"
lines=$(wc -l <"$T/log")
bytes=$(wc -c <"$T/log")
echo "# log after 4 s of constant failure: $lines lines, $bytes bytes"
check "log stays small under constant failure ($lines lines)" test "$lines" -lt 60
rc=0; stop_daemon || rc=$?
check "SIGTERM exits 0" test "$rc" -eq 0
check "collapsed repeats summarised at exit" grep -q 'repeated' "$T/log"
finish
