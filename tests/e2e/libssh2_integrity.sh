#!/usr/bin/env bash
# Integrity through a libssh2 forward: LS2_INTEGRITY_MB (default 1024) of
# random bytes up, down, and both ways at once on one connection (which
# also exercises half-close in both directions); sha256 equal on both ends.
. "$(dirname "$0")/libssh2_lib.sh"

mb=${LS2_INTEGRITY_MB:-1024}
D=$LS2_T/data
mkdir -p "$D"
head -c "$((mb * 1024 * 1024))" /dev/urandom >"$D/a"
head -c "$((mb * 1024 * 1024))" /dev/urandom >"$D/b"
sum_a=$(sha256sum <"$D/a" | cut -d' ' -f1)
sum_b=$(sha256sum <"$D/b" | cut -d' ' -f1)

r_up=$(free_ns_port)
r_down=$(free_ns_port)
r_bi=$(free_ns_port)
l_up=$(free_port)
l_down=$(free_port)
l_bi=$(free_port)
SOCAT=(socat -b 131072 -t 120)

# The remote ends (one connection each), in the lab namespace.
ns_bg "${SOCAT[@]}" -u "TCP-LISTEN:$r_up,bind=127.0.0.1,reuseaddr" \
	"SYSTEM:sha256sum >$D/up.remote"
ns_bg "${SOCAT[@]}" -u "OPEN:$D/a" "TCP-LISTEN:$r_down,bind=127.0.0.1,reuseaddr"
ns_bg "${SOCAT[@]}" "TCP-LISTEN:$r_bi,bind=127.0.0.1,reuseaddr" \
	"SYSTEM:cat $D/b & sha256sum >$D/bi.remote; wait"
sleep 0.3

ls2_driver fwd connect "add 127.0.0.1:$l_up:127.0.0.1:$r_up" \
	"add 127.0.0.1:$l_down:127.0.0.1:$r_down" "add 127.0.0.1:$l_bi:127.0.0.1:$r_bi" \
	"print ready" "sleep 900000"
check "connect and three forwards" wait_line fwd 'print ready' 15

rate() { # rate START_MS → MB/s
	local ms=$(($(now_ms) - $1))
	((ms > 0)) || ms=1
	echo "$((mb * 1000 / ms)) MB/s"
}

t0=$(now_ms)
"${SOCAT[@]}" -u "OPEN:$D/a" "TCP:127.0.0.1:$l_up"
lab_wait_for 30 test -s "$D/up.remote" || true
up_rate=$(rate "$t0")
check "$mb MiB up: sha256 equal ($up_rate)" test "$(cut -d' ' -f1 <"$D/up.remote" 2>/dev/null)" = "$sum_a"

t0=$(now_ms)
got=$("${SOCAT[@]}" -u "TCP:127.0.0.1:$l_down" STDOUT | sha256sum | cut -d' ' -f1)
down_rate=$(rate "$t0")
check "$mb MiB down: sha256 equal ($down_rate)" test "$got" = "$sum_a"

t0=$(now_ms)
"${SOCAT[@]}" "TCP:127.0.0.1:$l_bi" "SYSTEM:cat $D/a & sha256sum >$D/bi.local; wait"
lab_wait_for 30 test -s "$D/bi.remote" || true
bi_rate=$(rate "$t0")
check "$mb MiB each way at once: sha256 equal up ($bi_rate)" \
	test "$(cut -d' ' -f1 <"$D/bi.remote" 2>/dev/null)" = "$sum_a"
check "$mb MiB each way at once: sha256 equal down" \
	test "$(cut -d' ' -f1 <"$D/bi.local" 2>/dev/null)" = "$sum_b"

ls2_finish
