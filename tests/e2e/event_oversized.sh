#!/usr/bin/env bash
# An event line over the 1 MiB bound (issue 16, item 8): dropped, then the
# runtime has the core list again at once, keeping the stream, so the
# container it announced is forwarded within moments, not at some later
# resync.  The real podman runtime, against fake_podman.py as the remote
# podman (through the fake transport, which runs commands locally); it
# replays events like podman's --since, and the replayed line must not start
# a resync loop.
. "$(dirname "$0")/lib.sh"
export FAKE_PODMAN_DIR=$T/podman
mkdir -p "$FAKE_PODMAN_DIR/running"
B=b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0
X=a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1
echo "base 18951" >"$FAKE_PODMAN_DIR/running/$B"
# Once the test has seen the first list's forward (go): after the runtime
# confirmed its stream (on_established) and the first list ran; a line lost
# before on_established needs no extra list, as the list that follows it
# sees the container anyway.
echo "go start $X big 18952 BIG" >"$FAKE_PODMAN_DIR/script"

cat >"$T/config.ini" <<C
[host "lab"]
url = ssh://tester@remote.invalid
transport = fake
runtime = podman
podman = $(cd "$(dirname "$0")" && pwd)/fake_podman.py
state_file = $T/state
C
start_daemon --config "$T/config.ini"
check "the container listed at start is forwarded" wait_for 5000 grep -q "forward 127.0.0.1:18951" "$T/state"
touch "$FAKE_PODMAN_DIR/go"
check "the 1.5 MiB start line is dropped and logged with the host" \
	wait_for 5000 grep -q 'msg="oversized event line dropped; listing again" host=lab plugin=podman' "$T/log"
t0=$(date +%s%N)
# An event runtime lists only at a sync: forwarded within 5 s (with room for
# a slow run) is the resync at once, and "two lists" below pins it to one.
check "the container whose start line was dropped is forwarded within 5 s (a resync at once)" \
	wait_for 5000 grep -q "forward 127.0.0.1:18952" "$T/state"
t1=$(date +%s%N)
echo "forwarded $(((t1 - t0) / 1000000)) ms after the drop was logged"
sleep 1
calls=$(sort "$FAKE_PODMAN_DIR/calls" | uniq -c | tr -s ' ' | tr '\n' ';')
echo "remote podman calls: $calls"
check "one event stream: kept through the resync" test "$(grep -c '^events' "$FAKE_PODMAN_DIR/calls")" -eq 1
check "two lists: the sync and the one resync, no loop" test "$(grep -c '^ps' "$FAKE_PODMAN_DIR/calls")" -eq 2
"$RDHPF_BIN" metrics --runtime-dir "$T/run" >"$T/metrics"
check "the dropped event is counted" grep -q '^rdhpf_events_dropped_total{host="lab",plugin="podman"} 1$' "$T/metrics"
check "the resync is counted" grep -q '^rdhpf_resyncs_total{host="lab",plugin="podman"} 1$' "$T/metrics"
rc=0; stop_daemon || rc=$?
check "daemon exits 0" test "$rc" -eq 0
finish
