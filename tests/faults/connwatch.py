#!/usr/bin/env python3
"""Which TCP connections to the lab's sshd are ours?

  connwatch.py MATCH DEST_IP DEST_PORT OUT MAX_SECONDS

Every 20 ms, find the processes whose command line contains MATCH (the
daemon's runtime directory: rdhpf itself and its ssh masters), and append to
OUT the local port of each of their TCP sockets to DEST_IP:DEST_PORT, once
per port.  The lab sshd logs every accepted connection with the client's
port, so its log lines can then be split into ours and those of other
clients of the same lab (other tests, other engineers).  An accepted SSH
connection lives at least through key exchange and authentication (tens of
milliseconds at the very least), so none of ours is missed.  Exits after
MAX_SECONDS, or when killed."""
import os
import socket
import struct
import sys
import time


def hexaddr(ip, port):
    a = socket.inet_aton(ip)
    return "%08X:%04X" % (struct.unpack("<I", a)[0], port)


def main():
    match, ip, port, out, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    want = hexaddr(ip, port)
    needle = match.encode()
    seen = set()
    # pid -> [matches, start time in s since boot].  A process that does not
    # match yet may be a fork about to exec rdhpf: looked at again while it
    # is younger than a second.
    known = {}
    clk = os.sysconf("SC_CLK_TCK")
    end = time.monotonic() + limit

    def look(d):
        try:
            with open("/proc/%s/cmdline" % d, "rb") as c:
                return needle in c.read()
        except OSError:
            return False

    with open(out, "a") as f:
        while time.monotonic() < end:
            with open("/proc/uptime") as u:
                up = float(u.read().split()[0])
            cur = [d for d in os.listdir("/proc") if d.isdigit()]
            for d in cur:
                k = known.get(d)
                if k is None:
                    try:
                        with open("/proc/%s/stat" % d) as st:
                            start = int(st.read().rsplit(")", 1)[1].split()[19]) / clk
                    except (OSError, IndexError, ValueError):
                        start = 0.0
                    known[d] = [look(d), start]
                elif not k[0] and up - k[1] < 1.0:
                    k[0] = look(d)
            alive = set(cur)
            for d in list(known):
                if d not in alive:
                    del known[d]
            pids = [d for d in cur if known.get(d, [False])[0]]
            inodes = set()
            for p in pids:
                try:
                    for fd in os.listdir("/proc/%s/fd" % p):
                        try:
                            l = os.readlink("/proc/%s/fd/%s" % (p, fd))
                        except OSError:
                            continue
                        if l.startswith("socket:["):
                            inodes.add(l[8:-1])
                except OSError:
                    pass
            if inodes:
                try:
                    with open("/proc/net/tcp") as t:
                        next(t)
                        for line in t:
                            w = line.split()
                            if w[2] == want and w[9] in inodes:
                                lp = int(w[1].split(":")[1], 16)
                                if lp not in seen:
                                    seen.add(lp)
                                    f.write("%d\n" % lp)
                                    f.flush()
                except OSError:
                    pass
            time.sleep(0.02)


if __name__ == "__main__":
    main()
