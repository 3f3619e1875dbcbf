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

# bidi.py listen PORT | connect PORT, SEND_FILE, HASH_OUT: one connection;
# send the file then half-close, while hashing what comes back until EOF.
cat >"$LS2_T/bidi.py" <<'PY'
import hashlib, socket, sys, threading
mode, port, send_file, hash_out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if mode == "listen":
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    s, _ = ls.accept()
else:
    s = socket.create_connection(("127.0.0.1", port))
def sender():
    with open(send_file, "rb") as f:
        while True:
            b = f.read(1 << 17)
            if not b:
                break
            s.sendall(b)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=sender)
t.start()
h = hashlib.sha256()
while True:
    b = s.recv(1 << 17)
    if not b:
        break
    h.update(b)
t.join()
s.close()
with open(hash_out, "w") as f:
    f.write(h.hexdigest() + "\n")
PY

# The remote ends (one connection each), in the lab namespace.
ns_bg "${SOCAT[@]}" -u "TCP-LISTEN:$r_up,bind=127.0.0.1,reuseaddr" \
	"SYSTEM:sha256sum >$D/up.remote"
ns_bg "${SOCAT[@]}" -u "OPEN:$D/a" "TCP-LISTEN:$r_down,bind=127.0.0.1,reuseaddr"
ns_bg python3 "$LS2_T/bidi.py" listen "$r_bi" "$D/b" "$D/bi.remote"
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
python3 "$LS2_T/bidi.py" connect "$l_bi" "$D/a" "$D/bi.local"
lab_wait_for 30 test -s "$D/bi.remote" || true
bi_rate=$(rate "$t0")
check "$mb MiB each way at once: sha256 equal up ($bi_rate)" \
	test "$(cut -d' ' -f1 <"$D/bi.remote" 2>/dev/null)" = "$sum_a"
check "$mb MiB each way at once: sha256 equal down" \
	test "$(cut -d' ' -f1 <"$D/bi.local" 2>/dev/null)" = "$sum_b"

ls2_finish
