#!/usr/bin/env python3
"""A pass-through proxy for the Docker Engine API on a Unix socket, so a
fault test can put bytes into a real engine's event stream that the real
engine never sends (malformed lines), or end that stream on demand.

  engine_proxy.py LISTEN_SOCKET UPSTREAM_SOCKET SPOOL_DIR

Every connection is relayed byte for byte to UPSTREAM_SOCKET.  A connection
whose first request is GET .../events is followed: its response is relayed
chunk by chunk (or line by line when not chunked), and between two chunks
the proxy acts on files dropped into SPOOL_DIR (write elsewhere, then mv):

  NAME.inject     its bytes go into every open event stream as one chunk
                  (one event "line" per newline, exactly as written);
  close-events    every open event stream is closed (the engine side too),
                  as if the engine had dropped it.

What it did goes to stdout, one line each ("injected N bytes into K
streams", "closed K event streams").  Standard library only; one thread per
direction; everything ends with the process."""
import os
import re
import socket
import sys
import threading
import time

LISTEN, UPSTREAM, SPOOL = sys.argv[1:4]
EVENTS_RE = re.compile(rb"^GET (/v[0-9.]+)?/events[? 	]")

lock = threading.Lock()
streams = []  # open event streams: dicts with "queue" (list of bytes) and "close"


def log(msg):
    print("%.3f %s" % (time.time(), msg), flush=True)


def shut(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


def pump(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    shut(src, dst)


def events_pump(up, cl, st):
    """Relay an event stream response, acting on the queue between chunks."""
    buf = b""
    head_done = False
    chunked = False
    up.settimeout(0.05)
    try:
        while True:
            # Between two chunks (nothing partial buffered): act on the queue.
            if head_done and buf == b"":
                with lock:
                    q, st["queue"] = st["queue"], []
                    close = st["close"]
                for payload in q:
                    if chunked:
                        cl.sendall(b"%x\r\n" % len(payload) + payload + b"\r\n")
                    else:
                        cl.sendall(payload)
                if close:
                    break
            try:
                b = up.recv(65536)
            except socket.timeout:
                continue
            if not b:
                break
            buf += b
            if not head_done:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    continue
                head, buf = buf[: i + 4], buf[i + 4 :]
                chunked = b"transfer-encoding: chunked" in head.lower()
                cl.sendall(head)
                head_done = True
            # Forward every complete unit (a chunk, or a line), keep the rest.
            while buf:
                if chunked:
                    j = buf.find(b"\r\n")
                    if j < 0:
                        break
                    size = int(buf[:j].split(b";")[0], 16)
                    end = j + 2 + size + 2
                    if len(buf) < end:
                        break
                    cl.sendall(buf[:end])
                    buf = buf[end:]
                    if size == 0:
                        raise EOFError
                else:
                    j = buf.rfind(b"\n")
                    if j < 0:
                        break
                    cl.sendall(buf[: j + 1])
                    buf = buf[j + 1 :]
    except (OSError, EOFError, ValueError):
        pass
    with lock:
        if st in streams:
            streams.remove(st)
    shut(up, cl)


def handle(cl):
    up = socket.socket(socket.AF_UNIX)
    try:
        up.connect(UPSTREAM)
        first = b""
        while b"\r\n" not in first:
            b = cl.recv(65536)
            if not b:
                raise OSError("closed before a request")
            first += b
        up.sendall(first)
    except OSError:
        shut(cl, up)
        return
    threading.Thread(target=pump, args=(cl, up), daemon=True).start()
    if EVENTS_RE.match(first):
        st = {"queue": [], "close": False}
        with lock:
            streams.append(st)
        log("event stream opened: %s" % first.split(b"\r\n")[0][:120].decode("latin-1"))
        events_pump(up, cl, st)
    else:
        pump(up, cl)


def spool():
    while True:
        time.sleep(0.05)
        try:
            names = sorted(os.listdir(SPOOL))
        except OSError:
            continue
        for n in names:
            p = os.path.join(SPOOL, n)
            if n.endswith(".inject"):
                with lock:
                    if not streams:
                        continue  # kept until a stream is open
                    data = open(p, "rb").read()
                    os.unlink(p)
                    for st in streams:
                        st["queue"].append(data)
                    k = len(streams)
                log("injected %d bytes into %d streams (%s)" % (len(data), k, n))
            elif n == "close-events":
                with lock:
                    os.unlink(p)
                    for st in streams:
                        st["close"] = True
                    k = len(streams)
                log("closed %d event streams" % k)


def main():
    try:
        os.unlink(LISTEN)
    except OSError:
        pass
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(LISTEN)
    os.chmod(LISTEN, 0o600)
    srv.listen(64)
    threading.Thread(target=spool, daemon=True).start()
    log("listening on %s, upstream %s" % (LISTEN, UPSTREAM))
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
