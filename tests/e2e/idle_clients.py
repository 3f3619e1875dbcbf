#!/usr/bin/env python3
"""Hold N idle TCP connections to HOST:PORT (never sending a byte), for the
metrics_listen tests.  Writes "opened K" to READY once they are open, then
watches them until STOP exists, every one was closed by the server, or
MAX_S passed (bounded), and prints
  opened K failed F closed_by_server M last_close_s T
"""
import os, resource, select, socket, sys, time

host, port, n, ready, stop, max_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 64
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))

t0 = time.monotonic()
socks, failed = [], 0
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        s.setblocking(False)
        socks.append(s)
    except OSError:
        failed += 1
        s.close()
with open(ready + ".tmp", "w") as f:
    f.write("opened %d\n" % len(socks))
os.rename(ready + ".tmp", ready)

open_ = set(socks)
closed, last_close = 0, 0.0
poller = select.poll()
fdmap = {}
for s in socks:
    poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
    fdmap[s.fileno()] = s
while open_ and not os.path.exists(stop) and time.monotonic() - t0 < max_s:
    for fd, ev in poller.poll(50):
        s = fdmap[fd]
        if s not in open_:
            continue
        try:
            data = s.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if data == b"":
            open_.discard(s)
            poller.unregister(fd)
            closed += 1
            last_close = time.monotonic() - t0
print("opened %d failed %d closed_by_server %d last_close_s %.2f" % (len(socks), failed, closed, last_close))
for s in socks:
    s.close()
