#!/usr/bin/env bash
# sshd outage of LS2_OUTAGE_S (default 3) seconds with the libssh2
# transport holding a forward (tdriver --supervise does what the core's
# supervisor does: disconnect, reconnect after backoff, re-add forwards):
# the local port stays bound, clients that connect during the outage wait
# and are served once sshd is back, and a fresh connection is served within
# 1 s of sshd listening again.
. "$(dirname "$0")/libssh2_lib.sh"

outage_s=${LS2_OUTAGE_S:-3}
nwait=${LS2_OUTAGE_CLIENTS:-20}
rport=$(free_ns_port)
lport=$(free_port)

ls2_extra_cleanup() {
	lab_sshd_start >/dev/null 2>&1 || true
}

mkdir -p "$LS2_T/www"
echo "served-through-libssh2" >"$LS2_T/www/index.html"
ns_bg busybox httpd -f -p "127.0.0.1:$rport" -h "$LS2_T/www"
check "httpd in the lab" lab_wait_for 10 lab_ns_http_ok 127.0.0.1 "$rport"

ls2_driver fwd --supervise --backoff 100 --connect-timeout 10000 --keepalive 1000 \
	--keepalive-count 3 connect "add 127.0.0.1:$lport:127.0.0.1:$rport" "print ready" "sleep 900000"
check "connect and add" wait_line fwd 'print ready' 15
check "served before the outage" http_get "$lport"

t_stop=$(now_ms)
lab_sshd_stop
check "the session loss is reported" wait_line fwd '^t=[0-9]+ down ' 10
check "the local port is still bound during the outage" \
	bash -c "ss -Hltn 'sport = :$lport' | grep -q LISTEN"

# Clients arriving during the outage: accepted and held, not refused.
for i in $(seq 1 "$nwait"); do
	(curl -fsS --noproxy '*' -m 20 "http://127.0.0.1:$lport/" >"$LS2_T/wait.$i" 2>"$LS2_T/wait.$i.err"
		echo $? >"$LS2_T/wait.$i.rc") &
done
sleep 0.5
refused=$(cat "$LS2_T"/wait.*.rc 2>/dev/null | grep -vc '^0$' || true)
check "no client was refused during the outage ($refused early exits)" test "$refused" = 0

left=$((t_stop + outage_s * 1000 - $(now_ms)))
((left > 0)) && sleep "$(awk -v ms="$left" 'BEGIN { printf "%.3f", ms / 1000 }')"
lab_sshd_start
t_back=$(now_ms)
served_ms=-1
while (($(now_ms) - t_back < 10000)); do
	if http_get "$lport" 5 2>/dev/null; then
		served_ms=$(($(now_ms) - t_back))
		break
	fi
	sleep 0.05
done
# The 1 s target is bench/recover's to measure (no timing asserts in
# tests); here: served at all, and the figure printed.
echo "# a fresh connection served ${served_ms} ms after sshd is back (target <= 1000, bench/recover)"
check "a fresh connection is served once sshd is back" test "$served_ms" -ge 0
if wait_line fwd 'reconnected ' 5; then
	echo "# session back $(($(line_ms fwd 'reconnected ') - t_back)) ms after sshd listened again"
fi

wait_done() {
	local i
	for i in $(seq 1 "$nwait"); do
		[[ -s "$LS2_T/wait.$i.rc" ]] || return 1
	done
}
lab_wait_for 25 wait_done || true
okc=0
for i in $(seq 1 "$nwait"); do
	if [[ "$(cat "$LS2_T/wait.$i.rc" 2>/dev/null)" == 0 ]] &&
		grep -q served-through-libssh2 "$LS2_T/wait.$i"; then
		okc=$((okc + 1))
	fi
done
check "$okc/$nwait clients that connected during the outage were served after it" \
	test "$okc" = "$nwait"
check "the driver restored its forward" wait_line fwd 'restored n=1' 5
grep -E ' (down|reconnected|restored) ' "$LS2_T/fwd.out" | sed 's/^/  /'

ls2_finish
