#!/usr/bin/env bash
# Text from the remote engine and from the config reaches the user's
# terminal escaped (issue 16, item 3): a container named with ESC ] 0;…
# (set the terminal's title) or ESC [ 2J (clear it) shows as \x1b… in
# `rdhpf status`, and check-config never echoes a raw control byte.
. "$(dirname "$0")/lib.sh"

esc=$'\x1b' bel=$'\x07'
# raw_controls FILE: any C0 control other than newline, or DEL, or a C1 byte.
raw_controls() { LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f\x80-\x9f]' "$1"; }

# The third name carries U+009B, the C1 CSI, as UTF-8: jansson does not
# escape it by itself.
printf '0 start c1aaaaaaaaaa %s]0;PWNED%s 18701:80\n0 start c2bbbbbbbbbb %s[2Jclear 18702:80\n' \
	"$esc" "$bel" "$esc" >"$T/script"
printf '0 start c3cccccccccc c1\xc2\x9b31m 18703:80\n' >>"$T/script"
# And a HostIp that is a name (item 4): the core must not forward to it.
printf '0 start c4dddddddddd named evil.example.com:18704:80 18705:80\n' >>"$T/script"
cat >"$T/config.ini" <<C
[host "lab"]
url = ssh://tester@remote.invalid
transport = fake
runtime = fake
state_file = $T/state
script = $T/script
C
start_daemon --config "$T/config.ini"
check "forwards up" wait_for 3000 grep -q "forward 127.0.0.1:18705" "$T/state"
"$RDHPF_BIN" status --runtime-dir "$T/run" >"$T/table"
cat -v "$T/table"
check "status table holds no raw control byte" eval '! raw_controls "$T/table"'
check "the OSC name is shown escaped" grep -qF '\x1b]0;PWNED\x07' "$T/table"
check "the clear-screen name is shown escaped" grep -qF '\x1b[2Jclear' "$T/table"
check "the C1 name is shown escaped" grep -qF 'c1\xc2\x9b31m' "$T/table"
"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/json"
check "json keeps the name exact (escaped by JSON itself)" grep -qiF '\u001b]0;PWNED\u0007' "$T/json"
check "status json holds no raw control byte" eval '! raw_controls "$T/json"'
check "HostIp that is a name: not forwarded" eval '! grep -q ":18704" "$T/state"'
check "HostIp that is a name: the container's other port is" grep -q "forward 127.0.0.1:18705" "$T/state"
check "HostIp that is a name: skipped with a reason naming host, value and container" \
	grep -q 'msg="port not forwarded" host=lab container=named remote_port=18704 .*reason="published on a HostIp that is not an IP address" host_ip=evil.example.com' "$T/log"
rc=0; stop_daemon || rc=$?
check "daemon exits 0" test "$rc" -eq 0

# check-config: a value that is printed back, and one that is an error.
printf '[host "a"]\nurl = ssh://u@h.example\ntransport = fake\nruntime = fake\nstate_file = /x%s]0;T%s\n' \
	"$esc" "$bel" >"$T/ok.ini"
"$RDHPF_BIN" check-config --runtime-dir "$T/run" "$T/ok.ini" >"$T/cc.out" 2>&1 || true
cat -v "$T/cc.out"
check "check-config prints the value escaped" grep -qF 'state_file         = /x\x1b]0;T\x07' "$T/cc.out"
check "check-config output holds no raw control byte" eval '! raw_controls "$T/cc.out"'
printf '[host "a"]\nurl = ssh://u@h.example\ntransport = fake\nruntime = fake\nhealth_interval = 1%s[2J\n' \
	"$esc" >"$T/bad.ini"
"$RDHPF_BIN" check-config --runtime-dir "$T/run" "$T/bad.ini" >"$T/cc2.out" 2>&1 || true
cat -v "$T/cc2.out"
check "check-config error names the line" grep -q 'bad.ini:5: \[host "a"\] health_interval' "$T/cc2.out"
check "check-config error holds no raw control byte" eval '! raw_controls "$T/cc2.out"'
finish
