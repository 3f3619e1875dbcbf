#!/usr/bin/env bash
# Fault: hostile lines in the remote engine's event stream.
#   - malformed lines: the real dockerd never sends them, so the runtime is
#     pointed (api = unix) at engine_proxy.py, a pass-through proxy on a Unix
#     socket on the "remote" in front of the lab dockerd, which puts them
#     into the real event stream as chunks: not JSON, truncated JSON, binary
#     and control bytes, a bad container id, a wrong type, a start event
#     for a container that does not exist, and a value trying to forge a
#     log line.  Each must be logged (with the host) and skipped; the stream
#     goes on (a later container is forwarded), with no resync and no new
#     SSH connection.
#   - a 2 MiB event line: a container created through the Engine API (argv
#     cannot carry 2 MiB) with a 2 MiB label; docker puts every label into
#     the event's Actor.Attributes, so its start line is 2 MiB, past the
#     runtime's 1 MiB line bound.  The line is dropped (logged with the
#     host), the runtime has the core list again at once (the stream goes
#     on), so the container is forwarded within moments; its removal (whose
#     lines carry the label too) is seen the same way.  No resync loop.
#   event_lines.sh openssh|libssh2|libssh
. "$(dirname "$0")/lib.sh"
fault_init event_lines "${1:-}"

fwd_has() { [ "$(st "any(f['local_port'] == $1 for f in h['forwards'])")" = True ]; }
fwd_hasnt() { [ "$(st "any(f['local_port'] == $1 for f in h['forwards'])")" = False ]; }
resyncs() { st 'h["stream"]["resyncs"]'; }
starts() { st 'h["stream"]["starts"]'; }

spool=$T/spool
mkdir -p "$spool"
$PY "$FAULTS_DIR/engine_proxy.py" "$T/engine.sock" "$RDHPF_LAB_DOCKER_SOCK" "$spool" >"$T/proxy.log" 2>&1 &
FAULT_PIDS="$FAULT_PIDS $!"
check "engine proxy listening" wait_for 5000 test -S "$T/engine.sock"
inject() { # inject NAME < bytes: into the event stream, wait until done
	cat >"$spool/.$1.tmp"
	mv "$spool/.$1.tmp" "$spool/$1.inject"
	wait_for 5000 grep -q "injected .*($1.inject)" "$T/proxy.log"
}
close_events() { # end the event stream as a dying engine would: next resync
	: >"$spool/.close.tmp"
	mv "$spool/.close.tmp" "$spool/close-events"
}

c_run a -p "$(port 1)":80
fault_config "api = unix
socket = $T/engine.sock"
fault_start
check "through the proxy: forwarded" wait_for 5000 all_serve
check "the runtime speaks to the proxy socket (no fallback to a command)" \
	bash -c "! grep -q 'relaying through a command' '$T/log'"
check "the proxy relays an event stream" wait_for 3000 grep -q "event stream opened" "$T/proxy.log"
conn_mark
r0=$(resyncs) s0=$(starts)

# ---- malformed lines ----
fake_id=$(printf 'f%.0s' $(seq 64))
{
	printf 'this is not json\n'
	printf '{"status":"start","id":"\n'
	printf '\x00\x01\x02\x1b[31m{"Type":"container"\xff\xfe\n'
	printf '{"status":"start","id":"not-hex-at-all!","Type":"container","Action":"start","Actor":{"ID":"not-hex-at-all!"}}\n'
	printf '{"Type":"container","Action":"start","Actor":{"ID":12345}}\n'
	printf '[1,2,3]\n'
	printf '{"status":"start","id":"%s","Type":"container","Action":"start","Actor":{"ID":"%s","Attributes":{"name":"x\\nts=0 level=error msg=FORGED host=lab"}},"time":%s}\n' \
		"$fake_id" "$fake_id" "$(date +%s)"
} >"$T/malformed"
check "malformed lines injected into the live event stream" inject malformed <"$T/malformed"
sleep 0.5
c_run b -p "$(port 2)":80
check "malformed lines: the stream goes on (a later container is forwarded within 3 s)" \
	wait_for 3000 serves "$(port 2)"
check "malformed lines are logged as skipped, with the host" \
	grep -Eq 'level=warn msg="(malformed JSON skipped|event skipped[^"]*)" host=lab plugin=docker' "$T/log"
echo "# skipped-line log lines: $(grep -cE 'malformed JSON skipped|event skipped' "$T/log")"
check "no forged log line" bash -c "! grep -q '^ts=0 level=error msg=FORGED' '$T/log'"
check "no resync and no new event stream for malformed lines" \
	test "$(resyncs)" = "$r0" -a "$(starts)" = "$s0"
check "the start event of a container that does not exist is dropped (no forward appears for it)" \
	test "$(st "sum(1 for f in h['forwards'] if f['container_id'].startswith('ffffffff'))")" = 0
check_alive "after malformed lines"

# ---- a 2 MiB line ----
$PY - "$T/big.json" "$(port 3)" <<'PY'
import json, sys
json.dump({"Image": "rdhpf-lab/busybox:latest",
           "Labels": {"rdhpf.fault.big": "x" * (2 * 1024 * 1024)},
           "ExposedPorts": {"80/tcp": {}},
           "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": sys.argv[2]}]}}},
          open(sys.argv[1], "w"))
PY
api() { curl -fsS --unix-socket "$RDHPF_LAB_DOCKER_SOCK" "$@"; }
big_id=$(api -X POST -H 'Content-Type: application/json' --data-binary "@$T/big.json" \
	"http://lab/containers/create?name=$PFX-big" | $PY -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
check "created a container with a 2 MiB label through the Engine API" test -n "$big_id"
r1=$(resyncs)
api -X POST "http://lab/containers/$big_id/start" >/dev/null
check "the engine runs it" wait_for 5000 bash -c "[ \"\$($RDHPF_LAB_DOCKER inspect -f '{{.State.Running}}' $PFX-big)\" = true ]"
check "the 2 MiB start line is dropped and logged with the host" \
	wait_for 5000 grep -q 'msg="oversized event line dropped; listing again" host=lab plugin=docker' "$T/log"
c_run c -p "$(port 4)":80
check "after the 2 MiB line the stream goes on (a later container forwarded within 3 s)" \
	wait_for 3000 serves "$(port 4)"
check "the container whose start line was dropped is forwarded at once (the drop lists again)" \
	wait_for 3000 serves "$(port 3)"
sleep 3
dr=$(($(resyncs) - r1))
echo "# resyncs since the 2 MiB line: $dr"
check "no resync loop after the 2 MiB line (<= 1 resync in 3+ s; got $dr)" test "$dr" -le 1
check_alive "after the 2 MiB line"

# The next resync: the list is the truth.
r2=$(resyncs)
close_events
check "event stream ended by the engine side: resync" wait_for 5000 bash -c "[ \$('$RDHPF_BIN' status --runtime-dir '$T/run' --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"hosts\"][0][\"stream\"][\"resyncs\"])') -gt $r2 ]"
check "after the next resync the 2 MiB container is forwarded" wait_for 5000 serves "$(port 3)"
check "every running container's ports serve" wait_for 3000 all_serve

# Its removal: die/stop/destroy lines carry the 2 MiB label too.
c_rm big
sleep 0.5
check "the forward of a container whose stop lines were dropped goes at once (the drop lists again)" \
	wait_for 3000 fwd_hasnt "$(port 3)"
close_events
check "after the next resync the removed container's forward is gone" wait_for 5000 fwd_hasnt "$(port 3)"
check "every running container's ports serve" all_serve
check "host steady" wait_for 3000 state_is steady
check_conns 0
echo "# proxy: $(grep -c injected "$T/proxy.log") injections, $(grep -c 'event stream opened' "$T/proxy.log") event streams"
fault_end
