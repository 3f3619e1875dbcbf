#!/usr/bin/env bash
# Command line: plugins, check-config, zero-config, one instance.
. "$(dirname "$0")/lib.sh"
: "${RDHPF_BADPLUGIN_DIR:?}"

out=$("$RDHPF_BIN" plugins)
echo "$out"
check "plugins lists the fake transport" grep -Eq '^transport +fake +1\.0\.0 +2\.0 +exec' <<<"$out"
check "plugins lists the fake runtime" grep -Eq '^runtime +fake +1\.0\.0 +2\.0 +events' <<<"$out"
check "plugins lists the poll-only fake runtime" grep -Eq '^runtime +fake-poll +1\.0\.0 +2\.0 +-' <<<"$out"

out=$(RDHPF_PLUGIN_DIR=$RDHPF_BADPLUGIN_DIR "$RDHPF_BIN" plugins)
echo "$out"
check "plugin with ABI major 3 refused, naming both versions" \
	grep -q 'bad-abi.so: built for plugin ABI 3.0; this rdhpf speaks 2.0' <<<"$out"
check "plugin built for ABI 1.1 refused, naming both versions" \
	grep -q 'abi1.so: built for plugin ABI 1.1; this rdhpf speaks 2.0' <<<"$out"
check "plugin with a NULL mandatory slot refused" grep -q 'null-slot.so: mandatory slot .* is NULL' <<<"$out"

mkdir -m 755 "$T/ww"
cp "$RDHPF_PLUGIN_DIR/transport-fake.so" "$T/ww/"
chmod 0666 "$T/ww/transport-fake.so"
ln -s "$RDHPF_PLUGIN_DIR/runtime-fake.so" "$T/ww/link.so"
out=$(RDHPF_PLUGIN_DIR=$T/ww "$RDHPF_BIN" plugins)
echo "$out"
check "world-writable plugin refused" grep -q 'transport-fake.so: is world-writable' <<<"$out"
check "symlinked plugin refused" grep -q 'link.so: is a symbolic link' <<<"$out"
check "nothing loaded from that directory" grep -q '(no plugins)' <<<"$out"
chmod 0777 "$T/ww"
out=$(RDHPF_PLUGIN_DIR=$T/ww "$RDHPF_BIN" plugins 2>&1 || true)
check "world-writable plugin directory refused" grep -q 'world-writable' <<<"$out"

cat >"$T/bad.ini" <<'C'
[defaults]
keepalive_interval = 5s

[host "a"]
url = ssh://user@host.example
health_interval = 15 seconds
transport = fake
runtime = fake

[host "b"]
url = ftp://nope
transport = fake
runtime = fake
frobnicate = yes
C
rc=0; out=$("$RDHPF_BIN" check-config "$T/bad.ini" 2>&1) || rc=$?
echo "$out"
check "check-config exits non-zero on errors" test "$rc" -ne 0
check "bad duration reported with file:line" grep -q "bad.ini:6: \[host \"a\"\] health_interval" <<<"$out"
check "bad url reported with file:line" grep -q "bad.ini:11: \[host \"b\"\] url" <<<"$out"
check "unknown key reported with file:line" grep -q "bad.ini:14: \[host \"b\"\] frobnicate" <<<"$out"
check "exactly three errors" test "$(grep -c '^.*bad.ini:[0-9]*:' <<<"$out")" -eq 3

cat >"$T/good.ini" <<C
[host "a"]
url = ssh://user@[::1]:2222
transport = fake
runtime = fake
keepalive_interval = 2s
script = /dev/null
C
out=$("$RDHPF_BIN" check-config --config "$T/good.ini")
echo "$out"
check "effective policy printed" grep -Eq 'keepalive_interval += 2s' <<<"$out"
check "plugin key shown" grep -q 'script' <<<"$out"

# A config others may write is refused by check-config and run alike.
cp "$T/good.ini" "$T/open.ini"
chmod 0666 "$T/open.ini"
rc=0; out=$("$RDHPF_BIN" check-config "$T/open.ini" 2>&1) || rc=$?
check "0666 config refused by check-config, path and mode named" \
	grep -q "open.ini: bad permissions: mode 0666" <<<"$out"
rc=0; out=$("$RDHPF_BIN" run --runtime-dir "$T/run-open" --config "$T/open.ini" 2>&1) || rc=$?
check "0666 config refused by run (exit 2)" test "$rc" -eq 2
check "run names path and mode" grep -q "open.ini: bad permissions: mode 0666" <<<"$out"

out=$("$RDHPF_BIN" check-config --host ssh://me@example.net:2200 2>&1 || true)
check "zero-config --host: default transport openssh" grep -Eq 'transport += openssh' <<<"$out"
out=$(env -u XDG_CONFIG_HOME HOME="$T" DOCKER_HOST=ssh://me@dh.example "$RDHPF_BIN" check-config 2>&1 || true)
check "zero-config from DOCKER_HOST" grep -q 'dh.example' <<<"$out"
out=$(env -u XDG_CONFIG_HOME HOME="$T" DOCKER_HOST= "$RDHPF_BIN" check-config 2>&1 || true)
check "no config at all: says what to do" grep -q 'no hosts' <<<"$out"

# One instance per runtime directory.
start_daemon --config "$T/good.ini"
# The control socket comes after the lock and the pid file: the first
# instance holds both once it exists.  A second instance that won anyway
# would run on: timeout keeps the test bounded.
check "first instance up (control socket)" wait_for 10000 test -S "$T/run/control.sock"
rc=0; out=$(timeout 10 "$RDHPF_BIN" run --runtime-dir "$T/run" --config "$T/good.ini" 2>&1) || rc=$?
echo "$out"
check "second instance refused" test "$rc" -ne 0
check "refusal names the first pid" grep -q "pid $DAEMON_PID" <<<"$out"
# The refused instance must not have touched the first one's runtime files.
check "control socket still there after the refusal" test -S "$T/run/control.sock"
check "pid file still names the first instance" grep -qx "$DAEMON_PID" "$T/run/rdhpf.pid"
out=$("$RDHPF_BIN" status --runtime-dir "$T/run" --format json 2>&1 || true)
check "status still answers after the refusal" grep -q "\"pid\": $DAEMON_PID" <<<"$out"
out=$("$RDHPF_BIN" metrics --runtime-dir "$T/run" 2>&1 || true)
check "metrics still answer after the refusal" grep -q '^# TYPE rdhpf_' <<<"$out"
out=$("$RDHPF_BIN" doctor --runtime-dir "$T/run" --config "$T/good.ini" 2>&1 || true)
check "doctor still reaches the daemon after the refusal" \
	grep -Eq 'failure pattern.*(healthy|interruption|serve)' <<<"$out"
check "doctor does not say nothing runs" eval '! grep -q "no running rdhpf" <<<"$out"'
check "runtime dir is private" test "$(stat -c %a "$T/run")" = 700
rc=0; stop_daemon || rc=$?
check "first instance exits 0" test "$rc" -eq 0
finish
