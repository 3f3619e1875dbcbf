#!/usr/bin/env bash
# on_conflict = next-free: a forward moved off its taken port (18241 →
# 18242) is displaced when a container claims 18242 for itself; it must
# move again, not vanish (its container still owns the key it wanted),
# and stay after that container stops.
. "$(dirname "$0")/lib.sh"

# c1 starts, then stops, when the test says so (file:), each after the
# state before it has been seen.
printf '0 start a1 web 18241:80\nfile:%s start c1 other 18242:80\nfile:%s stop c1\n' \
	"$T/c1-go" "$T/c1-stop" >"$T/script-a"
cat >"$T/config.ini" <<C
[host "a"]
transport = fake
runtime = fake
bind_ports = yes
bind_address = 127.0.0.1
url = ssh://t@a.invalid
script = $T/script-a
on_conflict = next-free
C
# Someone else holds 18241 for the whole test.
hold_port 18241 60
start_daemon --config "$T/config.ini"
fwds() { # "port:container" of each active forward, sorted
	"$RDHPF_BIN" status --runtime-dir "$T/run" --format json 2>/dev/null | $PY -c '
import json, sys
h = json.load(sys.stdin)["hosts"][0]
print(" ".join(sorted("%d:%s" % (f["local_port"], f["container"]) for f in h["forwards"] if f["state"] == "active")))' || true
}
has() { [ "$(fwds)" = "$1" ]; }
check "web moved to 18242 (18241 held here)" wait_for 3000 has "18242:web"
touch "$T/c1-go"
check "other claims 18242, web moves on to 18243" wait_for 3000 has "18242:other 18243:web"
touch "$T/c1-stop"
check "other stopped: web still forwarded" wait_for 3000 has "18243:web"
sleep 1
check "… and stays" has "18243:web"
stop_daemon
finish
