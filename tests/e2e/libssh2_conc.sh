#!/usr/bin/env bash
# LS2_CONC_N (default 1000) concurrent connections through one libssh2
# forward to an echo server in the lab, each sending LS2_CONC_BYTES (default
# 65536) random bytes and reading them back: 0 failures, and the session
# stays one TCP connection.
. "$(dirname "$0")/libssh2_lib.sh"

n=${LS2_CONC_N:-1000}
nbytes=${LS2_CONC_BYTES:-65536}
rport=$(free_ns_port)
lport=$(free_port)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ls2_echo_py
cat >"$LS2_T/client.py" <<'PY'
import asyncio, os, resource, sys, time
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, n, nbytes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
fails = []
connected = 0
async def one(i, start):
    global connected
    data = os.urandom(nbytes)
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
        connected += 1
        await start.wait()           # everyone connected before anyone talks
        async def send():
            w.write(data)
            await w.drain()
            w.write_eof()
        t = asyncio.ensure_future(send())
        got = await asyncio.wait_for(r.readexactly(nbytes), 120)
        await t
        rest = await asyncio.wait_for(r.read(), 30)   # then EOF
        w.close()
        if got != data or rest:
            fails.append((i, "data mismatch"))
    except Exception as e:
        fails.append((i, repr(e)))
async def main():
    start = asyncio.Event()
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(one(i, start)) for i in range(n)]
    while connected + len(fails) < n and time.monotonic() - t0 < 60:
        await asyncio.sleep(0.02)
    t1 = time.monotonic()
    start.set()
    await asyncio.gather(*tasks)
    t2 = time.monotonic()
    print("connections=%d bytes_each=%d failures=%d connect_phase=%.2fs echo_phase=%.2fs"
          % (n, nbytes, len(fails), t1 - t0, t2 - t1))
    for f in fails[:10]:
        print("failure", f)
asyncio.run(main())
PY

ns_bg python3 "$LS2_T/echo.py" "$rport"
echo_up() { lab_ns python3 -c "import socket; socket.create_connection(('127.0.0.1', $rport)).close()" 2>/dev/null; }
check "echo server listens in the lab" lab_wait_for 10 echo_up

ls2_driver fwd connect "add 127.0.0.1:$lport:127.0.0.1:$rport" "print ready" "sleep 900000"
check "connect and add" wait_line fwd 'print ready' 15

python3 "$LS2_T/client.py" "$lport" "$n" "$nbytes" | tee "$LS2_T/client.out"
check "$n concurrent connections, each echoing $nbytes bytes: 0 failures" \
	grep -q "failures=0 " "$LS2_T/client.out"
nconn=$(ss -Htnp state established dst "$RDHPF_LAB_ADDR:22" | grep -c "pid=$LS2_DRIVER_PID," || true)
check "still one TCP connection to sshd ($nconn)" test "$nconn" = 1
check "the driver is still alive" kill -0 "$LS2_DRIVER_PID"

ls2_finish
