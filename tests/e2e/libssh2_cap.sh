#!/usr/bin/env bash
# The libssh2 transport's relays per forward are capped (issue 16, item 7):
# with max_relays=20, 40 clients held open through one forward get 20 working
# relays; the other 20 are closed at once and counted
# (relays_dropped_total), and a new client is served again once the held
# ones go.
. "$(dirname "$0")/libssh2_lib.sh"

rport=$(free_ns_port)
lport=$(free_port)
ls2_echo_py
cat >"$LS2_T/hold.py" <<'PY'
# Open N clients one after another (each relayed or refused before the
# next), then ask each for an echo; print how many echoed and how many were
# closed without one.  Bounded: 5 s a client.
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    socks.append(s)
echoed = closed = 0
for s in socks:
    try:
        s.sendall(b"ping\n")
        got = s.recv(16)
        if got == b"ping\n":
            echoed += 1
        else:
            closed += 1
    except OSError:
        closed += 1
print("echoed=%d closed=%d" % (echoed, closed))
for s in socks:
    s.close()
PY

ns_bg python3 "$LS2_T/echo.py" "$rport"
echo_up() { lab_ns python3 -c "import socket; socket.create_connection(('127.0.0.1', $rport)).close()" 2>/dev/null; }
check "echo server listens in the lab" lab_wait_for 10 echo_up

ls2_driver fwd --opt max_relays=20 connect "add 127.0.0.1:$lport:127.0.0.1:$rport" "print ready" \
	"wait-file $LS2_T/go1" stats "print stats1" "wait-file $LS2_T/go2" "sleep 900000"
check "connect and add" wait_line fwd 'print ready' 15

python3 "$LS2_T/hold.py" "$lport" 40 | tee "$LS2_T/hold.out"
check "20 of 40 held clients relayed" grep -q "echoed=20 " "$LS2_T/hold.out"
check "the other 20 closed at once" grep -q " closed=20" "$LS2_T/hold.out"
touch "$LS2_T/go1"
check "stats printed" wait_line fwd 'print stats1' 10
check "the refused ones are counted (relays_dropped_total 20)" \
	grep -qE 'stat relays_dropped_total 20$' "$LS2_T/fwd.out"
check "the refusal is logged with the limit" grep -q 'too many connections on a forward' "$LS2_T/fwd.err"
# Held ones closed: relays go, a new client is served again.
served() { grep -q "echoed=1 " <<<"$(python3 "$LS2_T/hold.py" "$lport" 1)"; }
check "a new client is served once the held ones are gone" lab_wait_for 5 served
nconn=$(ss -Htnp state established dst "$RDHPF_LAB_ADDR:22" | grep -c "pid=$LS2_DRIVER_PID," || true)
check "still one TCP connection to sshd ($nconn)" test "$nconn" = 1
touch "$LS2_T/go2"
ls2_finish
