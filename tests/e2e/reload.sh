#!/usr/bin/env bash
# SIGHUP: added hosts start, removed hosts stop, changed hosts restart,
# unchanged hosts keep their forwards (and their connection) untouched; a
# broken config is refused and the running one stays.
. "$(dirname "$0")/lib.sh"

printf '0 start a1 a 18101:80\n' >"$T/script-a"
printf '0 start b1 b 18201:80\n' >"$T/script-b"
printf '0 start c1 c 18301:80\n' >"$T/script-c"
host() { # host NAME [EXTRA]
	printf '[host "%s"]\nurl = ssh://t@%s.invalid\ntransport = fake\nruntime = fake\nscript = %s\nstate_file = %s\n%s\n' \
		"$1" "$1" "$T/script-$1" "$T/state-$1" "${2:-}"
}
{ host a; host b; } >"$T/config.ini"
start_daemon --config "$T/config.ini"
has() { grep -qx "$2" "$T/state-$1" 2>/dev/null; }
check "a forwarded" wait_for 3000 has a "forward 127.0.0.1:18101 127.0.0.1:18101"
check "b forwarded" wait_for 3000 has b "forward 127.0.0.1:18201 127.0.0.1:18201"
mapped() { grep -q "/$1\$" "/proc/$DAEMON_PID/maps"; }
check "the plugins the config names are loaded" mapped transport-fake.so
check "... and no other (runtime-static.so not mapped)" bash -c "! grep -q '/runtime-static.so\$' /proc/$DAEMON_PID/maps"

# change b, remove nothing, add c; a unchanged
{ host a; host b "keepalive_count = 5"; host c; } >"$T/config.ini"
kill -HUP "$DAEMON_PID"
check "reload logged" wait_for 3000 grep -q 'config reloaded.*added=1 removed=0 changed=1 unchanged=1' "$T/log"
check "c started" wait_for 3000 has c "forward 127.0.0.1:18301 127.0.0.1:18301"
check "a untouched: still its first connection" grep -qx "connects 1" "$T/state-a"
check "b restarted" wait_for 3000 grep -q 'host changed; restarting it.*host=b\|msg="host changed; restarting it" host=b' "$T/log"
check "b forwarded again" wait_for 3000 has b "forward 127.0.0.1:18201 127.0.0.1:18201"

# remove a
{ host b "keepalive_count = 5"; host c; } >"$T/config.ini"
kill -HUP "$DAEMON_PID"
check "a removed" wait_for 3000 grep -q 'added=0 removed=1 changed=0 unchanged=2' "$T/log"
check "a's forward removed" wait_for 3000 bash -c "! grep -q '^forward' '$T/state-a'"
"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/st.json"
check "status: ended forward of a says host removed" grep -q '"reason": "host removed"' "$T/st.json"

# add d, whose runtime no host used so far: loaded on reload
d_host='[host "d"]
url = ssh://t@d.invalid
transport = fake
runtime = static
ports = 18401
state_file = '"$T/state-d"
{ host b "keepalive_count = 5"; host c; echo "$d_host"; } >"$T/config.ini"
kill -HUP "$DAEMON_PID"
check "d added" wait_for 3000 grep -q 'added=1 removed=0 changed=0 unchanged=2' "$T/log"
check "runtime-static.so loaded for it" mapped runtime-static.so
check "d forwarded" wait_for 3000 has d "forward 127.0.0.1:18401 127.0.0.1:18401"

# broken config: refused, everything stays
printf '[host "c"]\nurl = nope\n' >"$T/config.ini"
kill -HUP "$DAEMON_PID"
check "broken config refused" wait_for 3000 grep -q 'reload refused' "$T/log"
check "error names file and line" grep -q "config.ini:2: \[host" "$T/log"
check "c still forwarded" has c "forward 127.0.0.1:18301 127.0.0.1:18301"
check "still running" kill -0 "$DAEMON_PID"
rc=0; stop_daemon || rc=$?
check "exit 0" test "$rc" -eq 0
finish
