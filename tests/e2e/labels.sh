#!/usr/bin/env bash
# labels = yes end to end on the fake plugins (the runtime reports labels
# through the ABI 2.0 container builder):
#  - rdhpf.port.<remote>=<local> moves a port, rdhpf.ignore=true skips a
#    container (status: "ignored by label"), rdhpf.bind picks the address;
#  - a bad label is reported for its container (log and status
#    label_errors) and the container's other ports still forward;
#  - with labels = no (the default) the same labels change nothing.
. "$(dirname "$0")/lib.sh"

cat >"$T/script" <<'S'
0 start l1aaaaaaaaaa moved 18401:80 18411:81 label:rdhpf.port.18401=18501
0 start l2bbbbbbbbbb hidden 18402:80 label:rdhpf.ignore=true
0 start l3cccccccccc broken 18403:80 18404:81 label:rdhpf.port.18403=abc
0 start l4dddddddddd plain 18405:80 label:tier=web
S
conf() { # conf FILE LABELS
	cat >"$1" <<C
[host "lab"]
url = ssh://t@labels.invalid
transport = fake
runtime = fake
state_file = $T/state
script = $T/script
bind_address = 127.0.0.1
labels = $2
C
}
has() { grep -qx "forward 127.0.0.1:$1 127.0.0.1:$2" "$T/state"; }

conf "$T/yes.ini" yes
start_daemon --config "$T/yes.ini"
check "rdhpf.port.18401=18501 forwards remote 18401 at local 18501" wait_for 3000 has 18501 18401
check "... and its other port as usual" has 18411 18411
check "rdhpf.ignore=true: no forward for that container" eval '! grep -q ":18402" "$T/state"'
check "a bad label loses only itself: the container's ports still forward" \
	eval 'has 18403 18403 && has 18404 18404'
check "a container without rdhpf labels is untouched" has 18405 18405
check "the bad label is logged with its container" \
	grep -q "container labels ignored.*container=broken.*rdhpf.port.18403" "$T/log"
"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/status.json"
check "status: the ignored container's port is skipped, reason and label named" \
	$PY -c '
import json, sys
h = json.load(open(sys.argv[1]))["hosts"][0]
s = [x for x in h["skipped"] if x["remote_port"] == 18402]
assert s and s[0]["reason"] == "ignored by label" and s[0]["label"] == "rdhpf.ignore=true", s
e = h["label_errors"]
assert [x["container"] for x in e] == ["broken"], e
assert "rdhpf.port.18403" in e[0]["error"], e
' "$T/status.json"
if $PY -c "import jsonschema" 2>/dev/null; then
	check "status validates against docs/status.schema.json" \
		$PY -c 'import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' \
		"$T/status.json" "$(dirname "$0")/../../docs/status.schema.json"
fi
stop_daemon || true

rm -f "$T/state"
conf "$T/no.ini" no
start_daemon --config "$T/no.ini"
check "labels = no: rdhpf.port is not applied" wait_for 3000 has 18401 18401
check "labels = no: rdhpf.ignore is not applied" has 18402 18402
"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/status2.json"
check "labels = no: no label_errors" \
	$PY -c 'import json, sys; assert json.load(open(sys.argv[1]))["hosts"][0]["label_errors"] == []' \
	"$T/status2.json"
stop_daemon || true
finish
