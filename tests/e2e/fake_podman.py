#!/usr/bin/env python3
"""A podman CLI for the e2e tests, run by the fake transport as the "remote"
podman (podman = this file).  State lives in $FAKE_PODMAN_DIR:
  running/ID      a running container: one line "NAME PORT"
  script          lines "SECONDS start ID NAME PORT [BIG]": what the first
                  `podman events` does (BIG: the event line is padded past
                  1 MiB with a label, as a container with a megabyte of
                  labels makes it); SECONDS "go": once the file go exists
                  (the test says when; waited for 60 s at most)
  calls           one line per invocation (events, ps, inspect)
Like podman's --since 5s, every later `events` replays what happened.
Bounded: events exits after 120 s."""
import json, os, sys, time

D = os.environ["FAKE_PODMAN_DIR"]
RUN = os.path.join(D, "running")
os.makedirs(RUN, exist_ok=True)
with open(os.path.join(D, "calls"), "a") as f:
    f.write(sys.argv[1] + "\n")


def running():
    out = {}
    for cid in sorted(os.listdir(RUN)):
        name, port = open(os.path.join(RUN, cid)).read().split()
        out[cid] = (name, int(port))
    return out


def event_line(cid, name, big):
    ev = {"ID": cid, "Image": "busybox", "Name": name, "Status": "start",
          "time": int(time.time()), "Type": "container",
          "Attributes": {"name": name}}
    if big:
        ev["Attributes"]["big"] = "x" * (1536 * 1024)
    return json.dumps(ev) + "\n"


cmd = sys.argv[1]
if cmd == "ps":
    print(json.dumps([{"Id": cid, "Names": [n], "State": "running",
                       "Ports": [{"host_ip": "", "container_port": 80, "host_port": p,
                                  "range": 1, "protocol": "tcp"}]}
                      for cid, (n, p) in running().items()]))
elif cmd == "container":  # container inspect ID...
    r = running()
    print(json.dumps([{"Id": cid, "Name": r[cid][0], "State": {"Running": True},
                       "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "",
                                                                 "HostPort": str(r[cid][1])}]}}}
                      for cid in sys.argv[3:] if cid in r]))
elif cmd == "events":
    played = os.path.join(D, "played")
    first = not os.path.exists(played)
    open(played, "a").close()
    t0 = time.monotonic()
    steps = [l.split() for l in open(os.path.join(D, "script")) if l.strip()]
    for st in steps:
        at, _, cid, name, port = st[:5]
        big = len(st) > 5
        if first:
            if at == "go":
                while not os.path.exists(os.path.join(D, "go")) and time.monotonic() - t0 < 60:
                    time.sleep(0.02)
            else:
                time.sleep(max(0.0, t0 + float(at) - time.monotonic()))
            with open(os.path.join(RUN, cid), "w") as f:
                f.write("%s %s\n" % (name, port))
        sys.stdout.write(event_line(cid, name, big))
        sys.stdout.flush()
    while time.monotonic() - t0 < 120:
        time.sleep(0.5)
