#!/usr/bin/env bash
# Issue 14 on the lab, over one transport: hosts_lab.sh openssh|libssh2
# Three hosts of one daemon on the lab, each limited by rules to its own
# containers, want one local port: host a (docker) holds it, host b (podman)
# is `conflict` naming a and takes the port over once a's container stops;
# host c (podman, on_conflict = next-free) serves on the next free port at
# once.  Every forward is on both loopbacks (bind_address = localhost).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

transport=${1:?transport}
case "$transport" in
openssh) base=28000 ;;
libssh2) base=28100 ;;
libssh) base=30000 ;;
*) echo "unknown transport $transport"; exit 2 ;;
esac
[ -f "$RDHPF_PLUGIN_DIR/transport-$transport.so" ] || { echo "SKIP: transport $transport not built"; exit 77; }
pfx=rdhpf-hosts-$transport
dk() { $RDHPF_LAB_DOCKER "$@"; }
pm() { $RDHPF_LAB_PODMAN "$@"; }
cleanup_containers() {
	dk rm -f "$pfx-a" >/dev/null 2>&1 || true
	pm rm -f -t 0 "$pfx-b" "$pfx-c" >/dev/null 2>&1 || true
}
cleanup_containers
trap 'cleanup_containers; cleanup' EXIT

host() { # host NAME RUNTIME EXTRA-LINES
	cat <<C
[host "$1"]
url = $RDHPF_LAB_URL
identity_file = $RDHPF_LAB_KEY
known_hosts = $RDHPF_LAB_KNOWN_HOSTS
transport = $transport
runtime = $2
backoff_initial = 100ms
backoff_max = 500ms
connect_timeout = 5s
rule = forward name=$pfx-$1
rule = ignore
$3

C
}
{
	host a docker ""
	host b podman "port_offset = -10"
	host c podman "port_offset = -20
on_conflict = next-free"
} >"$T/config.ini"

P=$((base + 1))
curl_lo() { curl "$1" -fs -o /dev/null --noproxy '*' --connect-timeout 1 --max-time 2 "http://localhost:$2/"; }
both_serve() { curl_lo -4 "$1" && curl_lo -6 "$1"; }
st() { "$RDHPF_BIN" status --runtime-dir "$T/run" --format json; }
fwd() { # fwd HOST : "bind state local_port wanted_port error" per forward
	st | $PY -c '
import json, sys
for h in json.load(sys.stdin)["hosts"]:
    if h["name"] == sys.argv[1]:
        for f in h["forwards"]:
            print(f["bind"], f["state"], f["local_port"], f["wanted_port"], f["error"] or "")' "$1"
}
both_fwd() { # both_fwd HOST PATTERN: on 127.0.0.1 and on ::1
	local out; out=$(fwd "$1")
	grep -q "^127.0.0.1 $2" <<<"$out" && grep -q "^::1 $2" <<<"$out"
}

start_daemon --config "$T/config.ini"
# One after the other, so that the owner is known: a first.
dk run -d --name "$pfx-a" -p $P:80 "$RDHPF_LAB_IMAGE" >/dev/null
check "host a holds $P on both loopbacks" wait_for 10000 bash -c "$(declare -f curl_lo both_serve); both_serve $P"
pm run -d --name "$pfx-b" -p $((P + 10)):80 "$RDHPF_LAB_IMAGE" >/dev/null
pm run -d --name "$pfx-c" -p $((P + 20)):80 "$RDHPF_LAB_IMAGE" >/dev/null
check "host b: conflict naming host a and its container" wait_for 10000 \
	both_fwd b "conflict $P None address in use: held by host a (container $pfx-a)"
check "host c (next-free): active on the next free port, wanted $P" wait_for 10000 \
	both_fwd c "active $((P + 1)) $P"
check "host c serves on both loopbacks" both_serve $((P + 1))
check "host a still serves" both_serve $P
dk rm -f "$pfx-a" >/dev/null
check "a's container stops: host b takes $P over" wait_for 10000 both_fwd b "active $P None"
check "and serves it" wait_for 3000 bash -c "$(declare -f curl_lo both_serve); both_serve $P"
"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/status.json"
if $PY -c "import jsonschema" 2>/dev/null; then
	check "status json validates against docs/status.schema.json" $PY -c '
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' \
		"$T/status.json" "$(dirname "$0")/../../docs/status.schema.json"
fi
check "rules: host b lists c's container as ignored by rule" \
	$PY -c '
import json, sys
st = json.load(open(sys.argv[1])); pfx = sys.argv[2]
b = [h for h in st["hosts"] if h["name"] == "b"][0]
assert any(s["container"] == pfx + "-c" and s["reason"] == "ignored by rule" for s in b["skipped"]), b["skipped"]' \
	"$T/status.json" "$pfx"
rc=0; stop_daemon || rc=$?
check "SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0
finish
