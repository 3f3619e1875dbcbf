#!/usr/bin/env bash
# Blackhole (iptables DROP in the lab namespace) under an idle libssh2
# session: the dead session is reported within keepalive_interval ×
# (keepalive_count + 1), as a timeout naming the keepalive; after the
# blackhole the session reconnects and the forward serves again.
. "$(dirname "$0")/libssh2_lib.sh"

ka_ms=${LS2_KA_MS:-1000}
ka_n=${LS2_KA_COUNT:-3}
bound=$((ka_ms * (ka_n + 1)))
rport=$(free_ns_port)
lport=$(free_port)

ls2_extra_cleanup() {
	lab_blackhole_off || true
}

mkdir -p "$LS2_T/www"
echo "served-through-libssh2" >"$LS2_T/www/index.html"
ns_bg busybox httpd -f -p "127.0.0.1:$rport" -h "$LS2_T/www"
check "httpd in the lab" lab_wait_for 10 lab_ns_http_ok 127.0.0.1 "$rport"

ls2_driver fwd --supervise --backoff 200 --connect-timeout 5000 --keepalive "$ka_ms" \
	--keepalive-count "$ka_n" connect "add 127.0.0.1:$lport:127.0.0.1:$rport" "print ready" \
	"sleep 900000"
check "connect and add" wait_line fwd 'print ready' 15
check "served before the blackhole" http_get "$lport"
sleep "$(awk -v ms="$ka_ms" 'BEGIN { printf "%.3f", 1.5 * ms / 1000 }')" # idle, probes flowing

t0=$(now_ms)
lab_blackhole_on
if wait_line fwd '^t=[0-9]+ down ' $(((bound + 5000) / 1000)); then
	t_down=$(line_ms fwd '^t=[0-9]+ down ')
	el=$((t_down - t0))
	check "dead session detected after $el ms (<= $bound = ${ka_ms} ms x ($ka_n + 1))" \
		test "$el" -le "$bound"
	check "reported as a keepalive timeout" grep -qE 'down TIMEOUT .*keepalive' "$LS2_T/fwd.out"
else
	not_ok "dead session not detected within $((bound + 5000)) ms"
fi
lab_blackhole_off
check "reconnected after the blackhole" wait_line fwd 'restored n=1' 15
check "served again" lab_wait_for 5 http_get "$lport" 1
grep -E ' (down|reconnected|restored) ' "$LS2_T/fwd.out" | head -3 | sed 's/^/  /'

ls2_finish
