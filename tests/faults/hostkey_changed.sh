#!/usr/bin/env bash
# Fault: the server's host key is not the one known_hosts has for it (the
# host was reinstalled, or someone is in between).  rdhpf must refuse: no
# forward ever appears, the log names a host key mismatch and the host,
# status shows the host not steady with last_error saying so, known_hosts is
# left byte-identical (never "accept-new", never updated), and rdhpf keeps
# retrying with backoff and never exits.  Then the right key is put back
# into the same known_hosts file: rdhpf connects and forwards.
# known_hosts is a copy of the lab's RDHPF_LAB_KNOWN_HOSTS_WRONG (unrelated
# keys for the same host), so the lab's sshd is not touched.
#   hostkey_changed.sh openssh|libssh2|libssh
. "$(dirname "$0")/lib.sh"
fault_init hostkey_changed "${1:-}"
hold=${HOLD_S:-6}

c_run a -p "$(port 1)":80
kh=$T/known_hosts
cp "$RDHPF_LAB_KNOWN_HOSTS_WRONG" "$kh"
chmod 600 "$kh"
cp "$kh" "$T/known_hosts.orig"
sum_wrong=$(sha256sum <"$RDHPF_LAB_KNOWN_HOSTS_WRONG")
sum_right=$(sha256sum <"$RDHPF_LAB_KNOWN_HOSTS")
mtime0=$(stat -c %Y.%N "$kh")
KH=$kh fault_config

conn_mark
start_daemon --config "$T/config.ini"
t0=$(now_ns)
# Sample the state while probing: backoff must show up, steady never.
(
	end=$(($(now_ns) + hold * 1000000000))
	while [ "$(now_ns)" -lt "$end" ]; do st 'h["state"]' 2>/dev/null || true; sleep 0.1; done
) >"$T/states" &
sampler=$!
check "no forward ever appears in ${hold}s" $PROBE never "$BIND" "$hold" "$(port 1)"
wait "$sampler" || true
check_alive "after ${hold}s of refused host keys"
states=$(sort "$T/states" | uniq -c | tr '\n' ' ' | tr -s ' ')
echo "# states seen: $states"
check "never steady while the key is wrong" bash -c "! grep -qx steady '$T/states'"
check "backoff visible in status" grep -qx backoff "$T/states"
check "the log names a host key mismatch and the host" \
	grep -Eiq "host key mismatch.*$RDHPF_LAB_ADDR|$RDHPF_LAB_ADDR.*host key mismatch" "$T/log"
check "the log says it backs off (retry_ms)" grep -q 'link down, backing off.*host key.*retry_ms=' "$T/log"
"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/status.json"
check "status: not steady, last_error names the host key mismatch, no active forward" $PY - "$T/status.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["hosts"][0]
print("#   state=%s connects=%s last_error=%r" % (h["state"], h["connects"], h["last_error"][:160]))
assert h["state"] != "steady", h["state"]
assert h["connects"] == 0, h["connects"]
assert "host key" in h["last_error"].lower() and "mismatch" in h["last_error"].lower(), h["last_error"]
assert not any(f["state"] == "active" for f in h["forwards"]), h["forwards"]
PY
attempts=$(att_delta)
echo "# TCP connections to sshd in ${hold}s: $attempts; accepted (authenticated): $(conn_delta)"
check "keeps retrying: more than one attempt in ${hold}s ($attempts)" test "$attempts" -gt 1
check "bounded retry rate: at most one attempt per 100 ms backoff_initial ($attempts in ${hold}s)" \
	test "$attempts" -le $((hold * 10))
check "never authenticated (never accepted the key): 0 sessions accepted" test "$(conn_delta)" -eq 0
check "a port open all along never shortens the backoff (no reconnect_probe hit)" \
	test "$(log_count 'port accepts again')" -eq 0
check "known_hosts byte-identical" cmp -s "$kh" "$T/known_hosts.orig"
check "known_hosts not rewritten (mtime unchanged)" test "$(stat -c %Y.%N "$kh")" = "$mtime0"
check "the lab's known_hosts files unchanged" \
	test "$(sha256sum <"$RDHPF_LAB_KNOWN_HOSTS_WRONG")" = "$sum_wrong" -a "$(sha256sum <"$RDHPF_LAB_KNOWN_HOSTS")" = "$sum_right"
if [ "$TRANSPORT" = openssh ]; then
	# Catch one of the short-lived attempts and read its command line.
	strict() { local p; p=$(master_pid) && [ -n "$p" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q 'StrictHostKeyChecking=yes'; }
	check "ssh runs with StrictHostKeyChecking=yes" wait_for 3000 strict
fi
# A failing connect must not write a screenful per attempt: the summariser
# collapses repeated warnings; what is printed per attempt must stay small.
bytes=$(wc -c <"$T/log")
per=$((bytes / (attempts > 0 ? attempts : 1)))
echo "# log: $bytes bytes for $attempts attempts ($per bytes per attempt)"
check_gap "log per refused attempt stays small (<= 512 bytes; got $per)" test "$per" -le 512

# The right key goes back into the same file.
cp "$RDHPF_LAB_KNOWN_HOSTS" "$kh"
conn_mark
t1=$(now_ns)
check "right key back: every port serves within 10 s" recover "$t1" 10
check "right key back: steady" wait_for 3000 state_is steady
check_conns 1
fault_end
