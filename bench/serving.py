#!/usr/bin/env python3
"""bench/serving.py BIND SECONDS FIRST COUNT [OFFSETS...]: every port
FIRST+i+offset (i < COUNT, each offset; an offset repeated probes the port
again) has answered HTTP 200 at least once within SECONDS: 64 threads, 2 s a
probe; a port that fails is tried again on the next pass, the ones that
served are not.  Prints on stderr how many probes failed, and how (connect
timeout = a dropped SYN, reply timeout, refused, reset).  Used by
bench/scale and bench/scale-loopback."""
import socket, sys, time
from concurrent.futures import ThreadPoolExecutor
bind, secs, first, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
offs = [int(x) for x in sys.argv[5:]] or [0]
kinds = {}
def ok(p):
    s = socket.socket(); s.settimeout(2)
    stage = "connect"
    try:
        s.connect((bind, p)); stage = "reply"; s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        r = s.recv(12)[9:12] == b"200"
        if not r:
            kinds["no 200"] = kinds.get("no 200", 0) + 1
        return r
    except OSError as e:
        k = "%s %s" % (stage, "timeout" if isinstance(e, socket.timeout) else
                       (e.strerror or type(e).__name__))
        kinds[k] = kinds.get(k, 0) + 1
        return False
    finally:
        s.close()
left = [first + i + o for o in offs for i in range(count)]
end, failed, passes = time.time() + secs, 0, 0
with ThreadPoolExecutor(64) as ex:
    while left and time.time() < end:
        res = list(ex.map(ok, left))
        passes += 1
        failed += res.count(False)
        left = [p for p, r in zip(left, res) if not r]
        if left:
            time.sleep(0.1)
print("#   serving: %d probes failed and were retried over %d passes; %d ports never served%s"
      % (failed, passes, len(left),
         "" if not kinds else " (" + ", ".join("%s: %d" % kv for kv in sorted(kinds.items())) + ")"),
      file=sys.stderr)
sys.exit(0 if not left else 1)
