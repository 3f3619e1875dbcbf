#!/usr/bin/env bash
# Errors found early (issue 16, item 6): every value the daemon would refuse
# at run time is refused by check-config and at startup, naming FILE:LINE;
# a host whose configuration can never work is marked failed in status and
# not retried, while the other hosts run.
. "$(dirname "$0")/lib.sh"
mkdir -m 700 "$T/run"

# A known_hosts path ssh cannot be given (the issue's example).
cat >"$T/kh.ini" <<'C'
[host "a"]
url = ssh://u@h.example
known_hosts = /tmp/a"b
C
rc=0; out=$("$RDHPF_BIN" check-config --runtime-dir "$T/run" "$T/kh.ini" 2>&1) || rc=$?
echo "$out"
check "check-config refuses known_hosts with a quote (exit 2)" test "$rc" -eq 2
check "... at FILE:LINE, naming the key" grep -q 'kh.ini:3: \[host "a"\] known_hosts: .*cannot be passed to ssh safely' <<<"$out"
rc=0; out=$(timeout 10 "$RDHPF_BIN" run --runtime-dir "$T/run" --config "$T/kh.ini" 2>&1) || rc=$?
check "run refuses it at startup (exit 2, not a retry loop)" test "$rc" -eq 2
check "run names FILE:LINE too" grep -q 'kh.ini:3: \[host "a"\] known_hosts' <<<"$out"

# A value only the plugin knows to be wrong: refused by its validate_option,
# at the key's own line, like a core key.
cat >"$T/opt.ini" <<'C'
[host "good"]
url = ssh://u@h.example
transport = fake
runtime = fake
script = /dev/null

[host "b"]
url = ssh://u@h2.example
transport = fake
runtime = fake
fail_connects = lots
C
rc=0; out=$("$RDHPF_BIN" check-config --runtime-dir "$T/run" "$T/opt.ini" 2>&1) || rc=$?
echo "$out"
check "check-config refuses a value the transport refuses (exit 2)" test "$rc" -eq 2
check "... at the key's line, naming key and value" \
	grep -q "opt.ini:11: \[host \"b\"\] fail_connects: 'lots' is not a count" <<<"$out"
rc=0; out=$(timeout 10 "$RDHPF_BIN" run --runtime-dir "$T/run" --config "$T/opt.ini" 2>&1) || rc=$?
check "run refuses it before any host starts (exit 2)" test "$rc" -eq 2
check "... and no host was started" eval '! grep -q "connected" <<<"$out"'
check "run's error is check-config's" grep -q "opt.ini:11: \[host \"b\"\] fail_connects: 'lots' is not a count" <<<"$out"

# A configuration the transport refuses only when connecting: failed, not
# retried; the other host runs.
cat >"$T/config.ini" <<C
[defaults]
backoff_initial = 100ms
backoff_max = 200ms
health_interval = 200ms

[host "good"]
url = ssh://u@h.example
transport = fake
runtime = fake
state_file = $T/state-good
script = /dev/null

[host "bad"]
url = ssh://u@h2.example
transport = fake
runtime = fake
state_file = $T/state-bad
refuse_connect = cipher list rejected
C
start_daemon --config "$T/config.ini"
st() { "$RDHPF_BIN" status --runtime-dir "$T/run" --format json | $PY -c "
import json, sys
h = {x['name']: x for x in json.load(sys.stdin)['hosts']}
print($1)"; }
state_is() { test "$(st "h['$1']['state']" 2>/dev/null)" = "$2"; }
check "the good host gets steady" wait_for 3000 state_is good steady
check "the bad host is marked failed" wait_for 3000 state_is bad failed
sleep 1 # backoff 100-200 ms: the old code retried ~5 times in this second
check "status says failed: <reason>" test "$(st 'h["bad"]["last_error"]')" = "failed: invalid: cipher list rejected"
calls=$(awk '/^connect_calls/ {print $2}' "$T/state-bad")
check "the bad host was tried once, not retried (connect calls: $calls)" test "$calls" -eq 1
"$RDHPF_BIN" status --runtime-dir "$T/run" >"$T/table"
cat "$T/table"
check "status table shows the failure" grep -q 'host bad  failed' "$T/table"
check "the failure is logged once as an error" \
	test "$(grep -c 'level=error msg="host failed: its configuration can never work' "$T/log")" -eq 1
check "the good host still steady" test "$(st 'h["good"]["state"]')" = steady
rc=0; stop_daemon || rc=$?
check "daemon exits 0" test "$rc" -eq 0
finish
