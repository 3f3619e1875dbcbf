#!/usr/bin/env bash
# Port rules end to end on the fake plugins: a rule set over a dozen
# containers forwards exactly the expected set; status (table and JSON,
# validated against the schema) lists every other published port with its
# reason and the rule FILE:LINE that decided; check-config prints the rule
# table and refuses a rule that can never match, naming both lines.
. "$(dirname "$0")/lib.sh"

cat >"$T/script" <<'S'
0 start a01 web1 8001:80
0 start a02 web2 8002:80
0 start a03 web3 8099:80
0 start a04 api-1 9229:9229 3000:3000
0 start a05 api-2 9230:9229
0 start a06 node-exporter 8050:9100
0 start a07 db 5432:5432
0 start a08 dns 5353:53/udp
0 start a09 cache 6379:6379
0 start a10 web4 8003:80 8004:81
0 start a11 web5 8100:80
0 start a12 web6 8001:8080
S
cat >"$T/config.ini" <<C
[defaults]
transport = fake
runtime = fake

[host "lab"]
url = ssh://t@lab.invalid
state_file = $T/state
script = $T/script
bind_address = 127.0.0.1
rule = ignore proto=udp
rule = ignore name=*-exporter
rule = forward port=8000-8099 -> 18000-18099
rule = forward name=api-* port=9229 -> 19229 bind=127.0.0.2
rule = forward port=5432 -> 15432
rule = ignore
C
# Lines above: the rules stand at lines 10-15.

"$RDHPF_BIN" check-config --config "$T/config.ini" >"$T/check" 2>&1 || true
check "check-config prints the rule table in file order with FILE:LINE" $PY - "$T/check" "$T/config.ini" <<'PY'
import sys
out, path = open(sys.argv[1]).read(), sys.argv[2]
want = [f"{path}:10: ignore proto=udp", f"{path}:12: forward port=8000-8099 -> 18000-18099",
        f"{path}:13: forward port=9229 name=api-* -> 19229 bind=127.0.0.2",
        f"{path}:15: ignore", "(default): never reached (line 15 matches every port)"]
pos = [out.find(w) for w in want]
assert all(p >= 0 for p in pos) and pos == sorted(pos), out
PY

start_daemon --config "$T/config.ini" --log-level debug
want="forward 127.0.0.1:15432 127.0.0.1:5432
forward 127.0.0.1:18001 127.0.0.1:8001
forward 127.0.0.1:18002 127.0.0.1:8002
forward 127.0.0.1:18003 127.0.0.1:8003
forward 127.0.0.1:18004 127.0.0.1:8004
forward 127.0.0.1:18099 127.0.0.1:8099
forward 127.0.0.2:19229 127.0.0.1:9229"
forwards() { grep '^forward ' "$T/state" | sort; }
same_set() { [ "$(forwards)" = "$want" ]; }
check "exactly the expected forwards across 12 containers" wait_for 5000 same_set
same_set || { echo "got:"; forwards; }

"$RDHPF_BIN" status --runtime-dir "$T/run" --format json >"$T/status.json"
check "every skipped port in status with its reason and rule" $PY - "$T/status.json" "$T/config.ini" <<'PY'
import json, sys
st, path = json.load(open(sys.argv[1])), sys.argv[2]
h = st["hosts"][0]
sk = {(s["container"], s["remote_port"]): s for s in h["skipped"]}
def want(c, p, reason, rule, holder=None):
    s = sk.get((c, p))
    assert s is not None, (c, p, sk.keys())
    assert s["reason"] == reason, s
    assert s["rule"] == (f"{path}:{rule}" if rule else None), s
    assert s["holder"] == holder, s
want("dns", 5353, "ignored by rule", 10)
want("node-exporter", 8050, "ignored by rule", 11)
want("api-1", 3000, "ignored by rule", 15)
want("api-2", 9230, "ignored by rule", 15)
want("cache", 6379, "ignored by rule", 15)
want("web5", 8100, "ignored by rule", 15)
want("web1", 8001, "local port taken by a later container of this host", 12, "web6")
assert sk[("web1", 8001)]["local_port"] == 18001, sk[("web1", 8001)]
assert len(sk) == 7, sorted(sk)
# every published port of every container: forwarded or skipped, once
assert len(h["forwards"]) + len(h["skipped"]) == 14, (len(h["forwards"]), len(h["skipped"]))
f = {x["local_port"]: x for x in h["forwards"]}
assert f[19229]["rule"] == f"{path}:13" and f[19229]["bind"] == "127.0.0.2", f[19229]
assert f[18001]["container"] == "web6", f[18001]
assert st["schema"] == 4
PY
if $PY -c "import jsonschema" 2>/dev/null; then
	check "status json validates against docs/status.schema.json" $PY -c '
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' \
		"$T/status.json" "$(dirname "$0")/../../docs/status.schema.json"
else
	not_ok "python3-jsonschema missing (scripts/deps installs it)"
fi
"$RDHPF_BIN" status --runtime-dir "$T/run" >"$T/status.txt"
check "status table shows a skipped port with reason and rule" \
	grep -Eq "127.0.0.1:6379/tcp +cache +skipped +ignored by rule \(rule .*config.ini:15\)" "$T/status.txt"
check "skipped port logged once with its rule" \
	test "$(grep -c 'port not forwarded.*container=cache.*rule=' "$T/log")" -eq 1
check "daemon stops cleanly" stop_daemon

# A rule that can never match: an error with FILE:LINE naming the earlier one.
cat >"$T/bad.ini" <<C
[host "lab"]
url = ssh://t@lab.invalid
transport = fake
runtime = fake
rule = forward port=8000-8099
rule = ignore port=8050
rule = forward port=80 -> 81-82
C
rc=0
"$RDHPF_BIN" check-config --config "$T/bad.ini" >"$T/bad.out" 2>&1 || rc=$?
check "check-config refuses a shadowed rule" test "$rc" -ne 0
check "shadowed rule error names FILE:LINE and the earlier rule" \
	grep -q "$T/bad.ini:6: \[host \"lab\"\] rule: can never match: the rule at line 5" "$T/bad.out"
check "bad rule error names FILE:LINE" grep -q "$T/bad.ini:7: \[host \"lab\"\] rule: " "$T/bad.out"
finish
