#!/usr/bin/env python3
"""Print the CLOCK_MONOTONIC time (ns) at which HOST:PORT first answers an
HTTP GET with at least one byte.  Polls every 0.5 ms, gives up after the
timeout (prints -1).  CLOCK_MONOTONIC is the same in every network
namespace, so a prober inside the lab and one outside compare directly."""
import socket
import sys
import time

host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + timeout
while time.monotonic() < end:
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        if s.recv(1):
            print(time.monotonic_ns(), flush=True)
            sys.exit(0)
    except OSError:
        pass
    finally:
        s.close()
    time.sleep(0.0005)
print(-1)
sys.exit(1)
