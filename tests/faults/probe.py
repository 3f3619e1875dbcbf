#!/usr/bin/env python3
"""HTTP probes for the fault scenarios (stdlib only, bounded in time).

  probe.py wait BIND TIMEOUT_S PORT...
      Poll every 50 ms; each probe gives up after 0.5 s.  A port counts as
      recovered once it has answered an HTTP GET with "200"; print the
      milliseconds until every port had recovered and exit 0, or print -1
      and the ports that never answered and exit 1 after TIMEOUT_S.  The
      milliseconds count from PROBE_T0_NS (wall clock, `date +%s%N`) when
      that is set, else from the probe's own start.
  probe.py never BIND DURATION_S PORT...
      For DURATION_S, probe every port every 200 ms; exit 1 (naming the
      port) as soon as one answers, else 0.
  probe.py once BIND PORT...
      Probe each port once; exit 0 if all answer, else print the ones that
      do not and exit 1.
"""
import os
import socket
import sys
import time


def serves(bind, port, timeout=0.5):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((bind, port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        end = time.monotonic() + timeout
        while len(data) < 12 and time.monotonic() < end:
            chunk = s.recv(64)
            if not chunk:
                break
            data += chunk
        return data.startswith(b"HTTP/1.") and data[9:12] == b"200"
    except OSError:
        return False
    finally:
        s.close()


def main():
    mode, bind = sys.argv[1], sys.argv[2]
    if mode == "once":
        bad = [p for p in map(int, sys.argv[3:]) if not serves(bind, p, 1.0)]
        if bad:
            print("not serving: " + " ".join(map(str, bad)))
            return 1
        return 0
    span = float(sys.argv[3])
    ports = [int(p) for p in sys.argv[4:]]
    t0 = time.monotonic()
    end = t0 + span
    if mode == "wait":
        left = set(ports)
        while left and time.monotonic() < end:
            for p in sorted(left):
                if serves(bind, p):
                    left.discard(p)
            if left:
                time.sleep(0.05)
        if left:
            print(-1, "never served:", " ".join(map(str, sorted(left))))
            return 1
        t0_ns = os.environ.get("PROBE_T0_NS")
        if t0_ns:
            print((time.time_ns() - int(t0_ns)) // 1000000)
        else:
            print(int((time.monotonic() - t0) * 1000))
        return 0
    if mode == "never":
        while time.monotonic() < end:
            for p in ports:
                if serves(bind, p, 0.3):
                    print("port %d served" % p)
                    return 1
            time.sleep(0.2)
        return 0
    print("unknown mode " + mode, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
