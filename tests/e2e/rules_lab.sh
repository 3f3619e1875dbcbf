#!/usr/bin/env bash
# Port rules on the lab (docker), over one transport: rules_lab.sh openssh|libssh2
# Ten containers and a rule set with an ignore by name glob, a remapped
# range, an include by name glob and a catch-all ignore: exactly the expected
# local ports serve (on both loopbacks), the others refuse, and status lists
# every skipped port with its reason and rule.  Then labels = yes with the
# engine's own labels: rdhpf.port, rdhpf.ignore, and a malformed label that
# loses only itself.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

transport=${1:?transport}
case "$transport" in
openssh) B=28200 ;;
libssh2) B=28400 ;;
libssh) B=30200 ;;
*) echo "unknown transport $transport"; exit 2 ;;
esac
[ -f "$RDHPF_PLUGIN_DIR/transport-$transport.so" ] || { echo "SKIP: transport $transport not built"; exit 77; }
pfx=rdhpf-rules-$transport
dk() { $RDHPF_LAB_DOCKER "$@"; }
cleanup_containers() { for c in $(dk ps -aq --filter "name=$pfx" 2>/dev/null); do dk rm -f "$c" >/dev/null 2>&1 || true; done; }
cleanup_containers
trap 'cleanup_containers; cleanup' EXIT

cat >"$T/config.ini" <<C
[host "lab"]
url = $RDHPF_LAB_URL
identity_file = $RDHPF_LAB_KEY
known_hosts = $RDHPF_LAB_KNOWN_HOSTS
transport = $transport
runtime = docker
backoff_initial = 100ms
backoff_max = 500ms
connect_timeout = 5s
rule = ignore name=$pfx-skip-*
rule = forward port=$B-$((B + 49)) -> $((B + 100))-$((B + 149))
rule = forward name=$pfx-api-* port=$((B + 60))-$((B + 69))
rule = ignore
C
# The rules stand at lines 10-13.
run_c() { local n=$1; shift; dk run -d --name "$pfx-$n" "$@" "$RDHPF_LAB_IMAGE" >/dev/null; }
for i in 0 1 2 3 4; do run_c "web-$i" -p $((B + i)):80; done
run_c skip-1 -p $((B + 5)):80
run_c skip-2 -p $((B + 6)):80
run_c api-1 -p $((B + 60)):80
run_c api-2 -p $((B + 61)):80 -p $((B + 62)):80/udp
run_c other -p $((B + 70)):80
start_daemon --config "$T/config.ini"

serve=""; for i in 0 1 2 3 4; do serve="$serve $((B + 100 + i))"; done
serve="$serve $((B + 60)) $((B + 61))"
refuse="$B $((B + 5)) $((B + 6)) $((B + 105)) $((B + 106)) $((B + 70)) $((B + 160))"
all_serve() { for p in $serve; do lab_http_ok 127.0.0.1 "$p" || return 1; done; }
check "the expected 7 forwards serve" wait_for 15000 all_serve
check "on ::1 too" bash -c "curl -6 -fs -o /dev/null --noproxy '*' --max-time 2 http://localhost:$((B + 100))/"
none_serve() { for p in $refuse; do ! lab_http_ok 127.0.0.1 "$p" || { echo "serves: $p"; return 1; }; done; }
check "nothing else serves" none_serve

"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/status.json"
check "status: forwards and skips exactly as the rules say" $PY - "$T/status.json" "$T/config.ini" "$pfx" "$B" <<'PY'
import json, sys
st, path, pfx, B = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], int(sys.argv[4])
h = st["hosts"][0]
fw = sorted({(f["container"], f["local_port"]) for f in h["forwards"]})
want = sorted([(f"{pfx}-web-{i}", B + 100 + i) for i in range(5)] +
              [(f"{pfx}-api-1", B + 60), (f"{pfx}-api-2", B + 61)])
assert fw == want, (fw, want)
assert all(f["state"] == "active" for f in h["forwards"]), h["forwards"]
sk = {(s["container"], s["remote_port"], s["proto"]): s for s in h["skipped"]}
def skipped(c, port, proto, reason, line):
    s = sk.get((f"{pfx}-{c}", port, proto))
    assert s is not None, (c, port, sorted(sk))
    assert s["reason"] == reason and s["rule"] == (f"{path}:{line}" if line else None), s
skipped("skip-1", B + 5, "tcp", "ignored by rule", 10)
skipped("skip-2", B + 6, "tcp", "ignored by rule", 10)
skipped("other", B + 70, "tcp", "ignored by rule", 13)
# matched by the api rule, but UDP cannot be carried
skipped("api-2", B + 62, "udp", "udp: SSH forwards carry TCP only", None)
assert len(sk) == 4, sorted(sk)
PY
if $PY -c "import jsonschema" 2>/dev/null; then
	check "status json validates against docs/status.schema.json" $PY -c '
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' \
		"$T/status.json" "$(dirname "$0")/../../docs/status.schema.json"
fi
rc=0; stop_daemon || rc=$?
check "SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0

# labels = yes: the engine's real labels (docker run --label) decide.
cleanup_containers
cat >"$T/labels.ini" <<C
[host "lab"]
url = $RDHPF_LAB_URL
identity_file = $RDHPF_LAB_KEY
known_hosts = $RDHPF_LAB_KNOWN_HOSTS
transport = $transport
runtime = docker
backoff_initial = 100ms
backoff_max = 500ms
connect_timeout = 5s
labels = yes
rule = ignore port=$((B + 85))
C
run_c lmoved -p $((B + 80)):80 --label "rdhpf.port.$((B + 80))=$((B + 180))"
run_c lhidden -p $((B + 81)):80 --label rdhpf.ignore=true
run_c lbroken -p $((B + 82)):80 -p $((B + 83)):80 --label "rdhpf.port.$((B + 82))=not-a-port"
run_c lplain -p $((B + 84)):80 -p $((B + 85)):80 --label tier=web
start_daemon --config "$T/labels.ini"
lserve="$((B + 180)) $((B + 82)) $((B + 83)) $((B + 84))"
lrefuse="$((B + 80)) $((B + 81)) $((B + 85))"
l_serve() { for p in $lserve; do lab_http_ok 127.0.0.1 "$p" || return 1; done; }
l_none() { for p in $lrefuse; do ! lab_http_ok 127.0.0.1 "$p" || { echo "serves: $p"; return 1; }; done; }
check "labels: rdhpf.port moves a port, a bad label loses only itself, the rest serve" \
	wait_for 15000 l_serve
check "labels: rdhpf.ignore and the rule's ignore leave their ports alone" l_none
"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/lstatus.json"
check "labels: status names the bad label and the ignored container" $PY - "$T/lstatus.json" "$pfx" "$B" <<'PY'
import json, sys
h, pfx, B = json.load(open(sys.argv[1]))["hosts"][0], sys.argv[2], int(sys.argv[3])
sk = {s["remote_port"]: s for s in h["skipped"]}
assert sk[B + 81]["reason"] == "ignored by label" and sk[B + 81]["label"] == "rdhpf.ignore=true", sk
assert sk[B + 85]["reason"] == "ignored by rule", sk
e = h["label_errors"]
assert [x["container"] for x in e] == [f"{pfx}-lbroken"], e
assert f"rdhpf.port.{B + 82}" in e[0]["error"], e
PY
check "labels: the bad label is in the log with its container" \
	grep -q "container labels ignored.*container=$pfx-lbroken" "$T/log"
stop_daemon || true
finish
