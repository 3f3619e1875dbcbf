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
# A plugin directory of our own, so that a plugin's mode can be changed.
mkdir -m 755 "$T/plugins"
for p in transport-fake runtime-fake runtime-static; do
	install -m 644 "$RDHPF_PLUGIN_DIR/$p.so" "$T/plugins/$p.so"
done
chmod 664 "$T/plugins/runtime-static.so" # group-writable: refused when wanted
export RDHPF_PLUGIN_DIR=$T/plugins
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
refused() { grep -c "msg=\"plugin refused\".*$1" "$T/log" || true; }
# ... first while runtime-static.so is group-writable: the refusal is logged
# at the reload and the reload refused; then, its mode fixed, the next
# SIGHUP loads it (a refusal is not remembered for ever).
kill -HUP "$DAEMON_PID"
check "reload: the refusal logged, file and why" \
	wait_for 3000 grep -q 'msg="plugin refused".*runtime-static.so.*group-writable' "$T/log"
check "reload: refused (no runtime static)" wait_for 3000 grep -q 'reload refused' "$T/log"
check "d not started" test ! -e "$T/state-d"
chmod 644 "$T/plugins/runtime-static.so"
kill -HUP "$DAEMON_PID"
check "d added" wait_for 3000 grep -q 'added=1 removed=0 changed=0 unchanged=2' "$T/log"
check "runtime-static.so loaded for it" mapped runtime-static.so
check "d forwarded" wait_for 3000 has d "forward 127.0.0.1:18401 127.0.0.1:18401"

# A plugin refused after dlopen (ABI major from the future) stays refused
# while its file is unchanged: each reload lists it again, and trying it
# again costs no descriptor.
install -m 644 "$RDHPF_BADPLUGIN_DIR/bad-abi.so" "$T/plugins/runtime-broken.so"
{ host b "keepalive_count = 5"; host c; echo "$d_host"; host e; } >"$T/config.ini"
sed -i '/^\[host "e"\]/,$ s/^runtime = fake$/runtime = broken/' "$T/config.ini"
nrej() { grep -c 'reload refused' "$T/log" || true; }
# Descriptors the daemon holds on the refused file (one per dlopen of it).
fds() { find "/proc/$DAEMON_PID/fd" -lname "*runtime-broken.so" 2>/dev/null | wc -l; }
r0=$(nrej)
kill -HUP "$DAEMON_PID"
check "ABI-refused plugin: reload refused" wait_for 3000 bash -c "[ \$(grep -c 'reload refused' '$T/log') -gt $r0 ]"
check "... its refusal logged with the ABI" grep -q 'msg="plugin refused".*runtime-broken.so.*ABI' "$T/log"
f1=$(fds)
for i in 1 2 3; do
	r0=$(nrej)
	kill -HUP "$DAEMON_PID"
	wait_for 3000 bash -c "[ \$(grep -c 'reload refused' '$T/log') -gt $r0 ]" || true
done
check "... listed again at each reload (4 times)" test "$(refused runtime-broken.so)" -eq 4
check "... and no descriptor held per reload ($f1 then $(fds))" test "$(fds)" -eq "$f1"
# Changed (its inode's ctime moves), it is tried again: one more dlopen.
touch "$T/plugins/runtime-broken.so"
r0=$(nrej)
kill -HUP "$DAEMON_PID"
wait_for 3000 bash -c "[ \$(grep -c 'reload refused' '$T/log') -gt $r0 ]" || true
check "... changed, it is tried again ($f1 then $(fds) descriptors on it)" test "$(fds)" -eq $((f1 + 1))

# broken config: refused, everything stays
printf '[host "c"]\nurl = nope\n' >"$T/config.ini"
r0=$(nrej)
kill -HUP "$DAEMON_PID"
check "broken config refused" wait_for 3000 bash -c "[ \$(grep -c 'reload refused' '$T/log') -gt $r0 ]"
check "error names file and line" grep -q "config.ini:2: \[host" "$T/log"
check "c still forwarded" has c "forward 127.0.0.1:18301 127.0.0.1:18301"
check "still running" kill -0 "$DAEMON_PID"
rc=0; stop_daemon || rc=$?
check "exit 0" test "$rc" -eq 0
finish
