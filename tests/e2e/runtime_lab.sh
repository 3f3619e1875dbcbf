#!/usr/bin/env bash
# The real binary against the lab, for one runtime over one transport:
#   runtime_lab.sh docker|podman openssh|libssh2|libssh
# Every published port is forwarded and only while its container runs:
# started before rdhpf, -p, three ports, -p 0:80, -P, a port on the remote's
# 127.0.0.1, UDP skipped with a reason, start/stop cycles over one SSH
# connection, a container started while sshd was down, an engine restart,
# and a clean SIGTERM.  CYCLES sets the number of start/stop cycles.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

runtime=${1:?runtime} transport=${2:?transport}
case "$runtime/$transport" in
docker/openssh) base=21000 ;;
docker/libssh2) base=22000 ;;
podman/openssh) base=23000 ;;
podman/libssh2) base=24000 ;;
docker/libssh) base=24100 ;;
podman/libssh) base=24200 ;;
*) echo "unknown combination $runtime/$transport"; exit 2 ;;
esac
[ -f "$RDHPF_PLUGIN_DIR/transport-$transport.so" ] || { echo "SKIP: transport $transport not built"; exit 77; }
# 100 cycles (the predecessor's stress test, shortened) on docker; podman
# starts a container several times slower, so 30 there unless CYCLES says.
if [ "$runtime" = docker ]; then cycles=${CYCLES:-100}; else cycles=${CYCLES:-30}; fi
if [ "$runtime" = docker ]; then
	engine() { $RDHPF_LAB_DOCKER "$@"; }
	rmc() { engine rm -f "$@" >/dev/null 2>&1 || true; }
else
	engine() { $RDHPF_LAB_PODMAN "$@"; }
	rmc() { engine rm -f -t 0 "$@" >/dev/null 2>&1 || true; }
fi
pfx=rdhpf-e2e-$runtime-$transport
cleanup_containers() { for c in $(engine ps -aq --filter "name=$pfx" 2>/dev/null); do rmc "$c"; done; }
cleanup_containers
trap 'cleanup_containers; cleanup' EXIT
run_c() { # run_c NAME ARGS... : detached, our image's httpd on 80
	local n=$1; shift
	engine run -d --name "$pfx-$n" "$@" "$RDHPF_LAB_IMAGE" >/dev/null
}
serves() { lab_http_ok 127.0.0.1 "$1"; }
refuses() { ! lab_http_ok 127.0.0.1 "$1"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

cat >"$T/config.ini" <<C
[host "lab"]
url = $RDHPF_LAB_URL
identity_file = $RDHPF_LAB_KEY
known_hosts = $RDHPF_LAB_KNOWN_HOSTS
transport = $transport
runtime = $runtime
backoff_initial = 100ms
backoff_max = 500ms
backoff_jitter = 0
health_interval = 1s
keepalive_interval = 1s
keepalive_count = 3
connect_timeout = 5s
C

# Started while rdhpf was not running.
run_c pre -p $((base + 1)):80
conn0=$(lab_sshd_accepted_count)
start_daemon --config "$T/config.ini"
check "container started before rdhpf: forwarded at start-up" wait_for 8000 serves $((base + 1))

t0=$(date +%s%N)
run_c one -p $((base + 2)):80
check "-p: serves within 3 s of docker run returning" wait_for 3000 serves $((base + 2))
echo "# forward serving $(ms_since "$t0") ms after run returned"
rmc "$pfx-one"
check "stopped: refuses within 3 s" wait_for 3000 refuses $((base + 2))

run_c three -p $((base + 3)):80 -p $((base + 4)):80 -p $((base + 5)):80
check "three ports on one container" wait_for 3000 bash -c "$(declare -f lab_http_ok serves); serves $((base + 3)) && serves $((base + 4)) && serves $((base + 5))"
rmc "$pfx-three"
check "three ports removed" wait_for 3000 bash -c "$(declare -f lab_http_ok refuses); refuses $((base + 3)) && refuses $((base + 4)) && refuses $((base + 5))"

# bind_address defaults to localhost: both loopbacks serve (curl resolves
# localhost itself, to ::1 for -6 and 127.0.0.1 for -4).
curl_lo() { curl "$1" -fs -o /dev/null --noproxy '*' --connect-timeout 1 --max-time 2 "http://localhost:$2/"; }
run_c dual -p $((base + 11)):80
check "localhost: curl -4 and curl -6 both serve" wait_for 3000 bash -c "$(declare -f curl_lo); curl_lo -4 $((base + 11)) && curl_lo -6 $((base + 11))"
rmc "$pfx-dual"
check "localhost: both refuse after stop" wait_for 3000 bash -c "$(declare -f curl_lo); ! curl_lo -4 $((base + 11)) && ! curl_lo -6 $((base + 11))"

# podman 4.3 refuses -p 0:80; its -p 80 means the same (an ephemeral port)
if [ "$runtime" = docker ]; then eph=0:80; else eph=80; fi
run_c eph -p $eph
eport=$(engine port "$pfx-eph" 80/tcp | head -n1 | sed 's/.*://')
check "-p $eph: forwarded on the port the engine chose ($eport)" wait_for 3000 serves "$eport"
rmc "$pfx-eph"
run_c pub --expose 80 -P
pport=$(engine port "$pfx-pub" 80/tcp | head -n1 | sed 's/.*://')
check "-P: forwarded on the port the engine chose ($pport)" wait_for 3000 serves "$pport"
rmc "$pfx-pub"

run_c lo -p 127.0.0.1:$((base + 6)):80
check "published on the remote's 127.0.0.1: forwarded" wait_for 3000 serves $((base + 6))
rmc "$pfx-lo"

run_c udp -p $((base + 7)):80/udp
sleep 1
check "UDP-only publish: not forwarded" refuses $((base + 7))
check "UDP-only publish: the log says why" grep -q "port not forwarded: SSH forwards carry TCP only.*/udp" "$T/log"
rmc "$pfx-udp"

t0=$(date +%s%N)
bad=0
for i in $(seq "$cycles"); do
	run_c cyc -p $((base + 9)):80
	wait_for 3000 serves $((base + 9)) || { echo "# cycle $i: did not serve"; bad=$((bad + 1)); }
	rmc "$pfx-cyc"
	wait_for 3000 refuses $((base + 9)) || { echo "# cycle $i: still served after stop"; bad=$((bad + 1)); }
done
echo "# $cycles start/stop cycles in $(ms_since "$t0") ms"
check "$cycles start/stop cycles: each served while up and refused after stop" test "$bad" -eq 0
conn=$(( $(lab_sshd_accepted_count) - conn0 ))
check "exactly one SSH connection through all of it (got $conn)" test "$conn" -eq 1

# A container started while sshd is down.
lab_sshd_stop
run_c outage -p $((base + 8)):80
sleep 1.5
t0=$(date +%s%N)
lab_sshd_start
check "started during an sshd outage: forwarded after the reconnect" wait_for 8000 serves $((base + 8))
echo "# served $(ms_since "$t0") ms after sshd was back (backoff_max 500ms)"
check "earlier forward restored too" serves $((base + 1))
rmc "$pfx-outage"

# Engine restart (podman has no daemon: its events command is killed).
if [ "$runtime" = docker ]; then
	lab_dockerd_restart
else
	lab_ns pkill -f 'podman events' || true
fi
run_c after -p $((base + 10)):80
check "after an engine restart: new container forwarded" wait_for 8000 serves $((base + 10))
if [ "$runtime" = docker ]; then
	# dockerd killed -9 takes its containers down; their forwards must go.
	check "after an engine restart: forwards match the running containers" wait_for 5000 refuses $((base + 1))
fi
rmc "$pfx-after"
check "still running" kill -0 "$DAEMON_PID"

"$RDHPF_BIN" status --runtime-dir "$T/run" >"$T/status" || true
cat "$T/status"
t0=$(date +%s%N)
rc=0; stop_daemon || rc=$?
took=$(ms_since "$t0")
check "SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0
check "SIGTERM: within 2 s (took $took ms)" test "$took" -lt 2000
# ^ssh: ssh itself, not a command line that merely names it (a checkout path may contain "ssh").
check "no ssh process of ours remains" bash -c "! pgrep -f '^ssh .*$T/run' >/dev/null"
check "runtime dir empty (sockets removed)" test -z "$(ls -A "$T/run")"
bytes=$(wc -c <"$T/log")
check "log stays small ($bytes bytes)" test "$bytes" -lt 200000
finish
