#!/usr/bin/env python3
"""A/B of rdhpf's transports on a flaky link: the driver behind bench/ab-flaky.

Runs the daemon once per transport, in sequence, against the lab, each time
replaying the same schedule of faults and container churn, probes every port
that should be forwarded once a second, and prints one table with the
transports side by side.  Standard library only; run as root (the lab).

Schedule file: one step per line, `TIME ACTION [ARGUMENT...]`; `#` starts a
comment.  TIME is from the daemon being steady: 0s, 500ms, 1m30s.
  start NAME PORT[:CPORT]... [restart=always] [big]   docker run (the lab
                                  image, httpd on 80; CPORT defaults to 80;
                                  big: it also serves a 64 MiB /big)
  stop NAME                       docker rm -f
  restart NAME                    docker restart -t 1
  kill-sshd DURATION              stop sshd (every session drops), start it
                                  again after DURATION
  blackhole DURATION [load=PORT]  DROP everything arriving on the lab's veth
                                  for DURATION (the link goes silent); with
                                  load=PORT, 4 downloads of /big through the
                                  forward of PORT run from 1 s before the
                                  DROP to its end (detection under load)
  restart-engine [graceful]       kill -9 dockerd (graceful: SIGTERM) and
                                  start it again
  kill-master                     kill -9 the ssh ControlMaster (openssh; a
                                  no-op with a note for other transports)
  kill-session                    kill -9 the lab sshd processes serving the
                                  daemon's connection (any transport)
  end                             the run ends here (default: 5 s after the
                                  last step)

What is measured, per transport:
  availability    over every second, the share of the ports that should be
                  forwarded that served locally.  A port should be forwarded
                  from 1 s after its container was first seen running, and
                  only in a second where the port serves on the remote itself
                  (probed inside the lab namespace), so engine downtime is not
                  counted against the transport.
  recovery        per fault kind, from the fault being lifted (sshd back,
                  rule removed, dockerd answering, master killed) to every
                  expected port serving again, probed every 50 ms.
  detection       blackhole: from the DROP rule to rdhpf counting the link
                  as lost (rdhpf_disconnects_total), polled every 50 ms;
                  idle and under load (blackhole ... load=PORT) apart.
  SSH connections "Accepted publickey" lines in the lab sshd log whose client
                  port was held by rdhpf or its ssh master (sampled every 20 ms
                  by tests/faults/connwatch.py); other clients of the lab are
                  shown apart.
  forwards missed container ports that should have been forwarded for at
                  least one second and never served while their container ran.
  CPU seconds     utime+stime of rdhpf, its reaped children and its live
                  children (openssh's ssh master), from /proc.
  peak RSS        VmHWM of rdhpf, and the largest VmHWM of its ssh children.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_LIB = os.path.join(ROOT, "tests", "lab", "lib.sh")
BINDS = {"openssh": "127.0.0.31", "libssh2": "127.0.0.32", "libssh": "127.0.0.33"}
PFX = "rdhpf-ab-"
POLICY = [
    ("keepalive_interval", "1s"), ("keepalive_count", "3"), ("backoff_initial", "100ms"),
    ("backoff_max", "1s"), ("health_interval", "1s"), ("connect_timeout", "3s"),
    ("breaker_cooldown", "3s"),
]
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def now():
    return time.monotonic()


# ---------------------------------------------------------------- schedule

DUR_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def parse_duration(s):
    m = DUR_RE.match(s)
    if not s or not m or not any(m.groups()):
        raise ValueError("bad duration %r (e.g. 500ms, 3s, 1m30s)" % s)
    mi, se, ms = (float(g) if g else 0.0 for g in m.groups())
    return mi * 60 + se + ms / 1000


ACTIONS = {"start", "stop", "restart", "kill-sshd", "blackhole", "restart-engine",
           "kill-master", "kill-session", "end"}


def parse_schedule(path):
    steps, end = [], None
    with open(path) as f:
        for no, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            w = line.split()
            where = "%s:%d" % (path, no)
            if len(w) < 2:
                raise SystemExit("%s: want TIME ACTION [ARGUMENT...]" % where)
            try:
                t = parse_duration(w[0])
            except ValueError as e:
                raise SystemExit("%s: %s" % (where, e))
            act, args = w[1], w[2:]
            if act not in ACTIONS:
                raise SystemExit("%s: unknown action %r (one of %s)" % (where, act, ", ".join(sorted(ACTIONS))))
            step = {"t": t, "action": act, "args": args, "where": where}
            try:
                if act == "start":
                    if len(args) < 2:
                        raise ValueError("start NAME PORT[:CPORT]... [restart=always] [big]")
                    step["name"] = args[0]
                    step["ports"], step["restart"], step["big"] = [], None, False
                    for a in args[1:]:
                        if a.startswith("restart="):
                            step["restart"] = a.split("=", 1)[1]
                            continue
                        if a == "big":
                            step["big"] = True
                            continue
                        hp, _, cp = a.partition(":")
                        hp, cp = int(hp), int(cp or 80)
                        if not (1 <= hp <= 65535 and 1 <= cp <= 65535):
                            raise ValueError("port out of range: %s" % a)
                        step["ports"].append((hp, cp))
                elif act in ("stop", "restart"):
                    if len(args) != 1:
                        raise ValueError("%s NAME" % act)
                    step["name"] = args[0]
                elif act == "kill-sshd":
                    if len(args) != 1:
                        raise ValueError("kill-sshd DURATION")
                    step["dur"] = parse_duration(args[0])
                elif act == "blackhole":
                    if not 1 <= len(args) <= 2 or (len(args) == 2 and not args[1].startswith("load=")):
                        raise ValueError("blackhole DURATION [load=PORT]")
                    step["dur"] = parse_duration(args[0])
                    step["load"] = int(args[1].split("=", 1)[1]) if len(args) == 2 else None
                    if step["load"] is not None and not 1 <= step["load"] <= 65535:
                        raise ValueError("load port out of range: %s" % args[1])
                elif act == "restart-engine":
                    if args not in ([], ["graceful"]):
                        raise ValueError("restart-engine [graceful]")
                elif args:
                    raise ValueError("%s takes no argument" % act)
            except ValueError as e:
                raise SystemExit("%s: %s" % (where, e))
            if act == "end":
                end = t
            else:
                steps.append(step)
    steps.sort(key=lambda s: s["t"])
    if end is None:
        last = max([s["t"] + s.get("dur", 0) for s in steps] or [0])
        end = last + 5
    return steps, end


# ---------------------------------------------------------------- the lab

class Lab:
    def __init__(self):
        out = subprocess.run(["bash", os.path.join(ROOT, "tests", "lab", "env")],
                             capture_output=True, text=True, check=True).stdout
        self.env = {}
        for line in out.splitlines():
            m = re.match(r"export (\w+)=(.*)$", line)
            if m:
                self.env[m.group(1)] = shlex.split(m.group(2))[0]
        self.docker = shlex.split(self.env["RDHPF_LAB_DOCKER"])
        self.sshd_log = self.env["RDHPF_LAB_SSHD_LOG"]
        self.ns = self.env["RDHPF_LAB_NETNS_PATH"]

    def fn(self, *words):
        """Run a tests/lab/lib.sh function; quiet unless it fails."""
        cmd = ". %s; %s" % (shlex.quote(LAB_LIB), " ".join(shlex.quote(w) for w in words))
        r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True,
                           env=dict(os.environ, LAB_QUIET="1"))
        if r.returncode != 0:
            print("lab: %s failed: %s" % (" ".join(words), (r.stderr or r.stdout)[-300:]),
                  file=sys.stderr)
        return r.returncode == 0

    def dk(self, *args, timeout=30):
        try:
            return subprocess.run(self.docker + list(args), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "", "timeout")

    def running(self):
        """{name: (id, [host ports])} of our running containers, or None if
        the engine does not answer."""
        r = self.dk("ps", "--filter", "name=^" + PFX, "--format", "{{.ID}} {{.Names}} {{.Ports}}",
                    timeout=5)
        if r.returncode != 0:
            return None
        res = {}
        for line in r.stdout.splitlines():
            w = line.split(None, 2)
            if len(w) < 2:
                continue
            ports = sorted({int(p) for p in re.findall(r":(\d+)->\d+/tcp", w[2] if len(w) > 2 else "")})
            res[w[1][len(PFX):]] = (w[0], ports)
        return res

    def cleanup(self):
        r = self.dk("ps", "-aq", "--filter", "name=^" + PFX)
        ids = r.stdout.split()
        if ids:
            self.dk("rm", "-f", *ids, timeout=60)

    def log_size(self):
        try:
            return os.path.getsize(self.sshd_log)
        except OSError:
            return 0

    def accepted_ports(self, offset):
        """Client ports of the connections sshd accepted since offset."""
        try:
            with open(self.sshd_log, "rb") as f:
                f.seek(offset)
                data = f.read().decode(errors="replace")
        except OSError:
            return []
        return [int(m) for m in re.findall(r"Accepted publickey for \S+ from \S+ port (\d+)", data)]


class RemoteProber:
    """A prober inside the lab namespace: is 127.0.0.1:P serving there?"""

    def __init__(self, lab):
        self.p = subprocess.Popen(["nsenter", "--net=" + lab.ns, sys.executable,
                                   os.path.abspath(__file__), "--remote-prober"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lock = threading.Lock()

    def probe(self, ports):
        if not ports:
            return {}
        with self.lock:
            self.p.stdin.write(" ".join(map(str, ports)) + "\n")
            self.p.stdin.flush()
            line = self.p.stdout.readline()
        res = {}
        for w in line.split():
            p, _, v = w.partition("=")
            res[int(p)] = v == "1"
        return res

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=5)
        except Exception:
            self.p.kill()


def serves(host, port, timeout=0.5):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data, end = b"", now() + timeout
        while len(data) < 12 and now() < end:
            c = s.recv(64)
            if not c:
                break
            data += c
        return data.startswith(b"HTTP/1.") and data[9:12] == b"200"
    except OSError:
        return False
    finally:
        s.close()


def remote_prober_main():
    pool = concurrent.futures.ThreadPoolExecutor(32)
    for line in sys.stdin:
        ports = [int(w) for w in line.split()]
        res = list(pool.map(lambda p: serves("127.0.0.1", p), ports))
        sys.stdout.write(" ".join("%d=%d" % (p, r) for p, r in zip(ports, res)) + "\n")
        sys.stdout.flush()


# ---------------------------------------------------------------- /proc

def proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    w = s[s.rindex(")") + 2:].split()
    # fields from 3 on: state ppid ... utime(14) stime(15) cutime(16) cstime(17)
    return {"ppid": int(w[1]), "utime": int(w[11]), "stime": int(w[12]),
            "cutime": int(w[13]), "cstime": int(w[14])}


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st["ppid"] == pid:
                out.append(int(d))
    return out


# ---------------------------------------------------------------- one run

def pct(vals, q):
    """Nearest-rank percentile."""
    if not vals:
        return None
    v = sorted(vals)
    k = max(1, -(-q * len(v) // 100))  # ceil(q * n / 100)
    return v[min(len(v), int(k)) - 1]


class Run:
    def __init__(self, args, lab, transport, steps, end, work):
        self.a, self.lab, self.tp, self.steps, self.end = args, lab, transport, steps, end
        self.bind = BINDS.get(transport, "127.0.0.39")
        self.work = os.path.join(work, transport)
        os.makedirs(self.work, mode=0o700, exist_ok=True)
        self.rundir = os.path.join(self.work, "run")
        self.lock = threading.Lock()
        self.seconds = []        # (t, should, ok, notes)
        self.recovery = {}       # kind -> [ms]
        self.detect = []         # blackhole detection ms, idle
        self.detect_load = []    # the same under load (blackhole ... load=PORT)
        self.notes = []          # (t, text)
        self.first_seen = {}     # container id -> t
        self.instances = {}      # (id, port) -> {"eligible": n, "served": n, "name": ..}
        self.known = {}          # name -> (id, ports) as last seen
        self.cpu = {"self": 0.0, "children": 0.0}
        self.rss = {"rdhpf": 0, "ssh": 0}
        self.exited = None
        self.windows = []        # (start, lifted) of faults with a duration
        self.undo = []           # lab faults to undo at the end, whatever happens
        self.threads = []

    # -- the daemon
    def start_daemon(self):
        cfg = os.path.join(self.work, "config.ini")
        e = self.lab.env
        with open(cfg, "w") as f:
            f.write('[host "lab"]\nurl = %s\nidentity_file = %s\nknown_hosts = %s\n'
                    'transport = %s\nruntime = docker\nbind_address = %s\n'
                    % (e["RDHPF_LAB_URL"], e["RDHPF_LAB_KEY"], e["RDHPF_LAB_KNOWN_HOSTS"], self.tp,
                       self.bind))
            for k, v in POLICY:
                f.write("%s = %s\n" % (k, v))
        self.log = open(os.path.join(self.work, "log"), "w")
        env = dict(os.environ, RDHPF_PLUGIN_DIR=self.a.plugin_dir)
        self.proc = subprocess.Popen([self.a.bin, "run", "--config", cfg, "--runtime-dir", self.rundir],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        deadline = now() + 15
        while now() < deadline:
            if self.status_state() == "steady":
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        return False

    def ctl(self, what):
        r = subprocess.run([self.a.bin, what, "--runtime-dir", self.rundir] +
                           (["--format", "json"] if what == "status" else []),
                           capture_output=True, text=True, timeout=5)
        return r.stdout if r.returncode == 0 else None

    def status_state(self):
        try:
            return json.loads(self.ctl("status") or "")["hosts"][0]["state"]
        except (ValueError, KeyError, IndexError, subprocess.TimeoutExpired):
            return None

    def disconnects(self):
        try:
            out = self.ctl("metrics") or ""
        except subprocess.TimeoutExpired:
            return None
        for line in out.splitlines():
            if line.startswith("rdhpf_disconnects_total{"):
                return float(line.split()[-1])
        return 0.0

    def sample_proc(self):
        pid = self.proc.pid
        st = proc_stat(pid)
        if st is None or self.proc.poll() is not None:
            return
        self_s = (st["utime"] + st["stime"]) / CLK
        kids = (st["cutime"] + st["cstime"]) / CLK
        for c in children(pid):
            cs = proc_stat(c)
            if cs:
                kids += (cs["utime"] + cs["stime"]) / CLK
            self.rss["ssh"] = max(self.rss["ssh"], vm_hwm_kib(c))
        self.cpu = {"self": self_s, "children": kids}
        self.rss["rdhpf"] = max(self.rss["rdhpf"], vm_hwm_kib(pid))

    def check_alive(self, t):
        if self.exited is None and self.proc.poll() is not None:
            self.exited = (t, self.proc.returncode)
            self.note(t, "rdhpf EXITED (status %s)" % self.proc.returncode)

    def note(self, t, text):
        with self.lock:
            self.notes.append((t, text))
        print("  %6.1fs  %s" % (t, text), flush=True)

    # -- faults
    def t(self):
        return now() - self.t0

    def watch_recovery(self, kind, t_lift):
        """Every 50 ms until every expected port serves; bounded 30 s."""
        def expected():
            ports = []
            for _, (_, ps) in (self.known or {}).items():
                ports += ps
            rem = self.remote.probe(sorted(set(ports))) if ports else {}
            return [p for p in sorted(set(ports)) if rem.get(p)]

        def run():
            deadline = t_lift + 30
            left = None
            while self.t() < deadline and self.proc.poll() is None:
                if left is None or not left:
                    left = set(expected())
                    if not left:
                        time.sleep(0.05)
                        continue
                for p in sorted(left):
                    if serves(self.bind, p, 0.3):
                        left.discard(p)
                if not left:
                    ms = (self.t() - t_lift) * 1000
                    with self.lock:
                        self.recovery.setdefault(kind, []).append(ms)
                    self.note(self.t(), "%s: every port serving %.0f ms after the fault was lifted" % (kind, ms))
                    return
                time.sleep(0.05)
            with self.lock:
                self.recovery.setdefault(kind, []).append(float("inf"))
            self.note(self.t(), "%s: NOT recovered%s" % (kind, " (rdhpf is gone)" if self.proc.poll() is not None
                                                          else " within 30 s"))
        self.spawn(run)

    def watch_detect(self, t_drop, base, loaded):
        def run():
            while self.t() < t_drop + 15 and self.proc.poll() is None:
                d = self.disconnects()
                if d is not None and base is not None and d > base:
                    ms = (self.t() - t_drop) * 1000
                    with self.lock:
                        (self.detect_load if loaded else self.detect).append(ms)
                    self.note(self.t(), "blackhole detected after %.0f ms" % ms)
                    return
                time.sleep(0.05)
            self.note(self.t(), "blackhole NOT detected%s" % (" (rdhpf is gone)" if self.proc.poll() is not None
                                                               else " within 15 s"))
        self.spawn(run)

    def start_load(self, port, streams=4):
        """streams downloads of /big through the forward of port, again and
        again until the returned stop() is called; stop() returns the bytes
        read in all (bounded by the time the caller holds the load)."""
        done, got = threading.Event(), [0]

        def loop():
            while not done.is_set():
                s = socket.socket()
                s.settimeout(1)
                try:
                    s.connect((self.bind, port))
                    s.sendall(b"GET /big HTTP/1.0\r\nHost: x\r\n\r\n")
                    while not done.is_set():
                        try:
                            c = s.recv(1 << 16)
                        except socket.timeout:
                            continue
                        if not c:
                            break
                        with self.lock:
                            got[0] += len(c)
                except OSError:
                    time.sleep(0.1)
                finally:
                    s.close()
        ths = [threading.Thread(target=loop, daemon=True) for _ in range(streams)]
        for th in ths:
            th.start()

        def stop():
            done.set()
            for th in ths:
                th.join(5)
            return got[0]
        return stop

    def spawn(self, fn):
        th = threading.Thread(target=fn, daemon=True)
        th.start()
        self.threads.append(th)

    def server_side_pids(self):
        out = subprocess.run(["ss", "-Htnp", "state", "established", "dst",
                              "%s:%s" % (self.lab.env["RDHPF_LAB_ADDR"], self.lab.env["RDHPF_LAB_PORT"])],
                             capture_output=True, text=True).stdout
        mine = {self.proc.pid} | set(children(self.proc.pid))
        lports = []
        for line in out.splitlines():
            pids = {int(x) for x in re.findall(r"pid=(\d+)", line)}
            if pids & mine:
                lports.append(line.split()[2].rsplit(":", 1)[1])
        pids = set()
        for lp in lports:
            o = subprocess.run(["nsenter", "--net=" + self.lab.ns, "ss", "-Htnp", "state", "established",
                                "( sport = :%s and dport = :%s )" % (self.lab.env["RDHPF_LAB_PORT"], lp)],
                               capture_output=True, text=True).stdout
            pids |= {int(x) for x in re.findall(r"pid=(\d+)", o)}
        return sorted(pids)

    def do(self, step):
        act, t = step["action"], self.t()
        lab = self.lab
        if act == "start":
            args = ["run", "-d", "--name", PFX + step["name"]]
            if step["restart"]:
                args += ["--restart", step["restart"]]
            for hp, cp in step["ports"]:
                args += ["-p", "%d:%d" % (hp, cp)]
            args.append(lab.env["RDHPF_LAB_IMAGE"])
            if step["big"]:
                args += ["sh", "-c", "mkdir -p /tmp/w && echo ok >/tmp/w/index.html && "
                         "dd if=/dev/zero of=/tmp/w/big bs=1M count=64 2>/dev/null; "
                         "exec httpd -f -p 80 -h /tmp/w"]
            r = lab.dk(*args)
            self.note(t, "start %s %s%s" % (step["name"], " ".join(str(p) for p, _ in step["ports"]),
                                          "" if r.returncode == 0 else " FAILED: " +
                                          r.stderr.strip().splitlines()[0][:160] if r.stderr.strip() else " FAILED"))
        elif act == "stop":
            lab.dk("rm", "-f", PFX + step["name"])
            self.note(t, "stop %s" % step["name"])
        elif act == "restart":
            lab.dk("restart", "-t", "1", PFX + step["name"])
            self.note(t, "restart %s" % step["name"])
        elif act == "kill-sshd":
            self.undo.append("sshd")
            lab.fn("lab_sshd_stop")
            self.note(t, "sshd stopped for %gs" % step["dur"])
            time.sleep(max(0, t + step["dur"] - self.t()))
            lab.fn("lab_sshd_start")
            self.undo.remove("sshd")
            tl = self.t()
            self.note(tl, "sshd back")
            self.windows.append((t, tl))
            self.watch_recovery("kill-sshd", tl)
        elif act == "blackhole":
            stop_load = None
            if step["load"]:
                stop_load = self.start_load(step["load"])
                time.sleep(1)
            base = self.disconnects()
            self.undo.append("blackhole")
            lab.fn("lab_blackhole_on")
            td = self.t()
            self.note(td, "blackhole on for %gs%s" % (step["dur"], " under load (4 downloads through :%d)"
                                                      % step["load"] if step["load"] else ""))
            self.watch_detect(td, base, bool(step["load"]))
            time.sleep(max(0, td + step["dur"] - self.t()))
            if stop_load:
                self.note(self.t(), "load: %.0f MiB downloaded from 1 s before the DROP to its end"
                          % (stop_load() / 1048576.0))
            lab.fn("lab_blackhole_off")
            self.undo.remove("blackhole")
            tl = self.t()
            self.note(tl, "blackhole lifted")
            self.windows.append((td, tl))
            self.watch_recovery("blackhole", tl)
        elif act == "restart-engine":
            self.undo.append("dockerd")
            lab.fn("lab_dockerd_stop", *(["--graceful"] if step["args"] else []))
            self.note(t, "dockerd %s" % ("stopped (SIGTERM)" if step["args"] else "killed (SIGKILL)"))
            time.sleep(0.5)
            lab.fn("lab_dockerd_start")
            self.undo.remove("dockerd")
            tl = self.t()
            self.note(tl, "dockerd answering again")
            self.windows.append((t, tl))
            self.watch_recovery("restart-engine", tl)
        elif act == "kill-master":
            if self.tp != "openssh":
                self.note(t, "kill-master: n/a for %s (no master process); no-op" % self.tp)
                return
            pids = [c for c in children(self.proc.pid) if self.is_master(c)]
            if not pids:
                self.note(t, "kill-master: no master running right now; skipped")
                return
            for p in pids:
                os.kill(p, signal.SIGKILL)
            self.note(t, "kill -9 ssh master %s" % " ".join(map(str, pids)))
            self.watch_recovery("kill-master", t)
        elif act == "kill-session":
            pids = self.server_side_pids()
            if not pids:
                self.note(t, "kill-session: no established connection right now; skipped")
                return
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            self.note(t, "kill -9 sshd session %s" % " ".join(map(str, pids)))
            self.watch_recovery("kill-session", t)

    @staticmethod
    def is_master(pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return False
        return os.path.basename(argv[0]) == b"ssh" and b"-M" in argv

    def undo_all(self):
        for what in list(self.undo):
            if what == "sshd":
                self.lab.fn("lab_sshd_start")
            elif what == "blackhole":
                self.lab.fn("lab_blackhole_off")
            elif what == "dockerd":
                self.lab.fn("lab_dockerd_start")
        self.undo = []

    # -- one tick: who should be served, who is
    def tick(self, t):
        snap = self.lab.running()
        if snap is None:
            self.seconds.append((t, 0, 0))   # engine not answering: nothing expected
            return
        self.known = snap
        cand = []
        for name, (cid, ports) in snap.items():
            first = self.first_seen.setdefault(cid, t)
            if t - first >= 1.0:
                cand += [(cid, name, p) for p in ports]
        ports = sorted({p for _, _, p in cand})
        rem = self.remote.probe(ports)
        loc = dict(zip(ports, self.pool.map(lambda p: serves(self.bind, p), ports)))
        should = ok = 0
        for cid, name, p in cand:
            if not rem.get(p):
                continue
            should += 1
            inst = self.instances.setdefault((cid, p), {"name": name, "eligible": 0, "served": 0})
            inst["eligible"] += 1
            if loc.get(p):
                ok += 1
                inst["served"] += 1
        self.seconds.append((t, should, ok))

    def run(self):
        lab = self.lab
        print("== %s (forwards on %s)" % (self.tp, self.bind), flush=True)
        lab.cleanup()
        self.acc0 = lab.log_size()
        # Which of sshd's connections are ours (tests/faults/connwatch.py):
        # other clients of the same lab are reported, not counted.
        self.myports = os.path.join(self.work, "myports")
        open(self.myports, "w").close()
        self.connwatch = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "faults", "connwatch.py"),
                                           self.rundir, lab.env["RDHPF_LAB_ADDR"], lab.env["RDHPF_LAB_PORT"],
                                           self.myports, str(self.end + 120)])
        self.remote = RemoteProber(lab)
        self.pool = concurrent.futures.ThreadPoolExecutor(32)
        try:
            if not self.start_daemon():
                self.note(0, "rdhpf did not become steady within 15 s")
            self.t0 = now()
            self.wall0 = time.time()
            pending = list(self.steps)
            k = 0
            while True:
                t = self.t()
                while pending and pending[0]["t"] <= t:
                    self.spawn(lambda s=pending.pop(0): self.do(s))
                if t >= self.end:
                    break
                if t >= k + 0.5:  # ticks at k + 0.5 s: steps at whole seconds never race them
                    self.check_alive(t)
                    self.tick(t)
                    self.sample_proc()
                    k += 1
                nxt = min([k + 0.5] + [s["t"] for s in pending[:1]] + [self.end])
                time.sleep(max(0.005, min(0.2, nxt - self.t())))
            for th in self.threads:
                th.join(timeout=35)
            self.sample_proc()
            self.check_alive(self.t())
        finally:
            self.undo_all()
            self.stop_daemon()
            self.remote.close()
            lab.cleanup()
            time.sleep(0.1)
            self.connwatch.terminate()
            self.connwatch.wait()
        with open(self.myports) as f:
            mine = {int(l) for l in f if l.strip()}
        ports = lab.accepted_ports(self.acc0)
        self.accepted = sum(1 for p in ports if p in mine)
        self.accepted_others = len(ports) - self.accepted

    def stop_daemon(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def link_notes(self):
        """rdhpf's own connects, from its log, on the schedule's clock: a
        reconnect no step explains shows another client of the lab at work."""
        out = []
        try:
            with open(os.path.join(self.work, "log"), errors="replace") as f:
                for line in f:
                    if 'msg="connected"' not in line:
                        continue
                    m = re.match(r"ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z", line)
                    if m:
                        wall = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
                        t = wall + int(m.group(2)) / 1000.0 - self.wall0
                        if t > 0:
                            out.append((t, "rdhpf: connected"))
        except (OSError, AttributeError):
            pass
        return out

    # -- figures
    def figures(self):
        should = sum(s for _, s, _ in self.seconds)
        ok = sum(o for _, _, o in self.seconds)
        out = [(s, o) for t, s, o in self.seconds
               if not any(a <= t <= b for a, b in self.windows)]
        should_out = sum(s for s, _ in out)
        ok_out = sum(o for _, o in out)
        missed = sorted("%s:%d" % (v["name"], p) for (cid, p), v in self.instances.items()
                        if v["eligible"] > 0 and v["served"] == 0)
        return {
            "availability": 100.0 * ok / should if should else None,
            "port_seconds": should,
            "availability_outside": 100.0 * ok_out / should_out if should_out else None,
            "recovery": {k: list(v) for k, v in self.recovery.items()},
            "detect": list(self.detect),
            "detect_load": list(self.detect_load),
            "accepted": self.accepted,
            "accepted_others": self.accepted_others,
            "missed": missed,
            "cpu": dict(self.cpu),
            "rss": dict(self.rss),
            "exited": self.exited,
            "series": [(round(t, 2), s, o) for t, s, o in self.seconds],
            "notes": sorted(self.notes + self.link_notes(), key=lambda n: n[0]),
        }


# ---------------------------------------------------------------- output

def fmt_ms(v):
    if v is None:
        return "-"
    return "never" if v == float("inf") else "%.0f" % v


def table(results, steps):
    tps = list(results)
    rows = []
    kinds = []
    for s in steps:
        k = s["action"]
        if k in ("kill-sshd", "blackhole", "restart-engine", "kill-master", "kill-session") and k not in kinds:
            kinds.append(k)

    def row(label, fn):
        rows.append([label] + [fn(results[tp], tp) for tp in tps])

    row("availability %", lambda r, tp: "-" if r["availability"] is None else "%.1f" % r["availability"])
    row("  port-seconds probed", lambda r, tp: str(r["port_seconds"]))
    row("availability % outside outages", lambda r, tp: "-" if r["availability_outside"] is None
        else "%.1f" % r["availability_outside"])
    for k in kinds:
        def rec(r, tp, k=k):
            v = r["recovery"].get(k)
            if not v:
                return "n/a" if k == "kill-master" and tp != "openssh" else "-"
            return "%s / %s (n=%d)" % (fmt_ms(pct(v, 50)), fmt_ms(pct(v, 99)), len(v))
        row("recovery ms p50/p99: " + k, rec)
    row("blackhole detection ms: idle", lambda r, tp: ", ".join(fmt_ms(x) for x in r["detect"]) or "-")
    if any(s["action"] == "blackhole" and s.get("load") for s in steps):
        row("blackhole detection ms: loaded", lambda r, tp: ", ".join(
            fmt_ms(x) for x in r.get("detect_load", [])) or "-")
    row("SSH connections opened", lambda r, tp: str(r["accepted"]) + (
        " (+%d by other lab clients)" % r["accepted_others"] if r["accepted_others"] else ""))
    row("forwards missed", lambda r, tp: str(len(r["missed"])) + (" (" + ", ".join(r["missed"][:4]) + ")" if r["missed"] else ""))
    row("CPU seconds: rdhpf + children", lambda r, tp: "%.2f = %.2f + %.2f" % (
        r["cpu"]["self"] + r["cpu"]["children"], r["cpu"]["self"], r["cpu"]["children"]))
    row("peak RSS MiB: rdhpf", lambda r, tp: "%.1f" % (r["rss"]["rdhpf"] / 1024.0))
    row("peak RSS MiB: ssh master", lambda r, tp: "%.1f" % (r["rss"]["ssh"] / 1024.0) if r["rss"]["ssh"] else "-")
    row("rdhpf exited", lambda r, tp: "no" if not r["exited"] else "YES at %.0fs (status %s)" % r["exited"])
    w0 = max(len(r[0]) for r in rows)
    ws = [max(len(tp), max(len(r[i + 1]) for r in rows)) for i, tp in enumerate(tps)]
    out = ["%-*s  %s" % (w0, "", "  ".join("%-*s" % (w, tp) for w, tp in zip(ws, tps)))]
    for r in rows:
        out.append("%-*s  %s" % (w0, r[0], "  ".join("%-*s" % (w, c) for w, c in zip(ws, r[1:]))))
    return "\n".join(out)


def svg_plot(results, steps, end, path, window=5):
    W, H, L, R, T, B = 900, 360, 60, 20, 30, 50
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    pw, ph = W - L - R, H - T - B

    def x(t):
        return L + pw * t / end

    def y(v):
        return T + ph * (1 - v / 100.0)
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="11">' % (W, H, W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="18" font-size="13">Availability over time (%d s moving window), per transport</text>' % (L, window)]
    for v in range(0, 101, 20):
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, y(v), W - R, y(v)))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%d%%</text>' % (L - 5, y(v) + 4, v))
    step = 60 if end > 300 else 10
    for t in range(0, int(end) + 1, step):
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>' % (x(t), T, x(t), T + ph))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%ds</text>' % (x(t), T + ph + 15, t))
    for s in steps:
        if s["action"] in ("start", "stop", "restart"):
            continue
        t0 = s["t"]
        t1 = t0 + s.get("dur", 0)
        if t1 > t0:
            o.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#f5e6c8" opacity="0.6"/>'
                     % (x(t0), T, max(1, x(t1) - x(t0)), ph))
        else:
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c9a15b" stroke-dasharray="3,3"/>'
                     % (x(t0), T, x(t0), T + ph))
        o.append('<text x="%.1f" y="%d" font-size="9" fill="#8a6d3b" transform="rotate(-90 %.1f %d)">%s</text>'
                 % (x(t0) + 3, T + ph - 4, x(t0) + 3, T + ph - 4, s["action"]))
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>' % (L, T, pw, ph))
    for i, (tp, r) in enumerate(results.items()):
        ser = r["series"]
        pts = []
        for j in range(len(ser)):
            lo = [s for s in ser[max(0, j - window + 1): j + 1]]
            sh = sum(a for _, a, _ in lo)
            okk = sum(b for _, _, b in lo)
            if sh:
                pts.append("%.1f,%.1f" % (x(ser[j][0]), y(100.0 * okk / sh)))
        c = colors[i % len(colors)]
        o.append('<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>' % (c, " ".join(pts)))
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                 % (L + 10 + i * 150, H - 12, L + 40 + i * 150, H - 12, c))
        avail = r["availability"]
        o.append('<text x="%d" y="%d">%s (%s%%)</text>' % (L + 45 + i * 150, H - 8, tp,
                                                         "-" if avail is None else "%.1f" % avail))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


# ---------------------------------------------------------------- main

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--remote-prober":
        remote_prober_main()
        return 0
    ap = argparse.ArgumentParser(prog="bench/ab-flaky", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--short", action="store_true", help="bench/schedules/short.txt, check the floor (CI)")
    g.add_argument("--long", action="store_true", help="bench/schedules/long.txt, write docs/ab-results.md")
    g.add_argument("--schedule", help="a schedule file of your own")
    ap.add_argument("--transports", help="comma-separated (default: every transport plugin built)")
    ap.add_argument("--floor", type=float, default=70.0,
                    help="--short: minimum availability %% (70; the short schedule's own outages cap it "
                         "near 85: a lost forward or a slow recovery costs 10-25 points)")
    ap.add_argument("--floor-outside", type=float, default=85.0,
                    help="--short: minimum availability %% outside outages (85)")
    ap.add_argument("--bin", default=os.environ.get("RDHPF_BIN") or os.path.join(ROOT, "build", "core", "rdhpf"))
    ap.add_argument("--plugin-dir", default=os.environ.get("RDHPF_PLUGIN_DIR") or os.path.join(ROOT, "build", "plugins"))
    ap.add_argument("--md", default=os.path.join(ROOT, "docs", "ab-results.md"))
    ap.add_argument("--svg", default=os.path.join(ROOT, "bench", "ab-flaky-long.svg"))
    ap.add_argument("--json", help="also write every figure (and the per-second series) here")
    ap.add_argument("--render", metavar="JSON", help="no run: print the table (and with --long write the "
                    "results page and plot) from a JSON written by --json")
    a = ap.parse_args()
    if a.short:
        sched = os.path.join(ROOT, "bench", "schedules", "short.txt")
    elif a.long:
        sched = os.path.join(ROOT, "bench", "schedules", "long.txt")
    elif a.schedule:
        sched = a.schedule
    else:
        ap.error("one of --short, --long, --schedule FILE")
    steps, end = parse_schedule(sched)
    if a.render:
        with open(a.render) as f:
            saved = json.load(f)
        results = saved["results"]
        tab = table(results, steps)
        print(tab)
        if a.long:
            svg_plot(results, steps, end, a.svg)
            write_md(a, results, steps, end, sched, tab, saved.get("took", 0), saved.get("argv"),
                     saved.get("started"))
            print("# wrote %s and %s" % (os.path.relpath(a.md, ROOT), os.path.relpath(a.svg, ROOT)))
        return 0
    if a.transports:
        tps = a.transports.split(",")
    else:
        tps = [tp for tp in ("openssh", "libssh2", "libssh")
               if os.path.exists(os.path.join(a.plugin_dir, "transport-%s.so" % tp))]
    for tp in tps:
        if not os.path.exists(os.path.join(a.plugin_dir, "transport-%s.so" % tp)):
            raise SystemExit("transport %s is not built in %s" % (tp, a.plugin_dir))
    if not os.access(a.bin, os.X_OK):
        raise SystemExit("no rdhpf binary at %s (meson compile -C build)" % a.bin)
    lab = Lab()
    work = tempfile.mkdtemp(prefix="rdhpf-ab.")
    os.chmod(work, 0o700)
    print("# schedule %s: %d steps over %.0f s; transports: %s" % (os.path.relpath(sched, ROOT), len(steps), end, ", ".join(tps)))
    print("# policy: " + ", ".join("%s=%s" % kv for kv in POLICY))
    t_start = time.time()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {}
    for tp in tps:
        r = Run(a, lab, tp, steps, end, work)
        r.run()
        results[tp] = r.figures()
    took = time.time() - t_start
    tab = table(results, steps)
    print()
    print(tab)
    print("\n# %d transports in %.0f s; daemon logs in %s" % (len(tps), took, work))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"schedule": sched, "argv": sys.argv[1:], "took": took, "started": started,
                       "results": results}, f, indent=1, default=str)
    rc = 0
    if a.short:
        for tp, r in results.items():
            av = r["availability"] or 0.0
            bad = []
            avo = r["availability_outside"] or 0.0
            if av < a.floor:
                bad.append("availability %.1f%% < %.0f%%" % (av, a.floor))
            if avo < a.floor_outside:
                bad.append("availability outside outages %.1f%% < %.0f%%" % (avo, a.floor_outside))
            if r["missed"]:
                bad.append("%d forwards missed" % len(r["missed"]))
            if r["exited"]:
                bad.append("rdhpf exited")
            if bad:
                print("FAIL - %s: %s" % (tp, "; ".join(bad)))
                rc = 1
            else:
                print("ok   - %s: availability %.1f%% >= %.0f%% (outside outages %.1f%% >= %.0f%%), "
                      "0 forwards missed, never exited" % (tp, av, a.floor, avo, a.floor_outside))
    if a.long:
        svg_plot(results, steps, end, a.svg)
        write_md(a, results, steps, end, sched, tab, took, sys.argv[1:], started)
        print("# wrote %s and %s" % (os.path.relpath(a.md, ROOT), os.path.relpath(a.svg, ROOT)))
    return rc


def write_md(a, results, steps, end, sched, tab, took, argv, started):
    def ver(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except Exception:
            return "?"
    cmd = "bench/ab-flaky " + " ".join(argv or ["--long"])
    rel_svg = os.path.relpath(a.svg, os.path.dirname(a.md))
    lines = [
        "# A/B of transports on a flaky link",
        "",
        "One long run of `bench/ab-flaky --long`: the daemon once per transport, in sequence, against",
        "the lab, each time replaying the same schedule of faults and container churn",
        "([`bench/schedules/long.txt`](../bench/schedules/long.txt), %d steps over %.0f s), with every" % (len(steps), end),
        "forwarded port probed once a second.  How each figure is measured: `bench/ab-flaky --help`.",
        "",
        "Reproduce (as root, on a Debian machine with the lab's packages):",
        "",
        "```sh",
        "meson setup build && meson compile -C build",
        "tests/lab/up",
        cmd,
        "```",
        "",
        "Run on %s, %.0f s in all; %s, %s, libssh2 %s, libssh %s, kernel %s." % (
            started or "?", took,
            ver([a.bin, "--version"]), ver(["ssh", "-V"]),
            ver(["dpkg-query", "-W", "-f", "${Version}", "libssh2-1"]),
            ver(["dpkg-query", "-W", "-f", "${Version}", "libssh-4"]), os.uname().release),
        "Policy (every transport): " + ", ".join("`%s = %s`" % kv for kv in POLICY) + ".",
        "",
        "```",
        tab,
        "```",
        "",
        "![availability over time per transport](%s)" % rel_svg,
        "",
        "Shaded: faults with a duration (sshd down, blackhole); dashed: instant faults.  Availability",
        "counts a port only in seconds where it serves on the remote itself, from 1 s after its",
        "container started, so an engine restart is not held against a transport.",
        "",
    ]
    others = {tp: r.get("accepted_others", 0) for tp, r in results.items()}
    if any(others.values()):
        lines += [
            "**Not alone on the lab:** other clients of the lab sshd opened %s SSH connections during"
            % ", ".join("%d (%s run)" % (n, tp) for tp, n in others.items()),
            "this run (counted apart, not in the table).  Their tests stop and restart the lab's sshd",
            "too, which drops our session as well and can end an sshd outage of ours early: in the",
            "step log below, look for \"rdhpf: connected\" lines that no step of the schedule explains.",
            "",
        ]
    lines += [
        "## What happened, per transport",
        "",
    ]
    for tp, r in results.items():
        lines.append("### %s" % tp)
        lines.append("")
        lines.append("```")
        for t, text in r["notes"]:
            lines.append("%7.1fs  %s" % (t, text))
        lines.append("```")
        lines.append("")
    with open(a.md, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
