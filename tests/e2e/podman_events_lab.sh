#!/usr/bin/env bash
# podman's events read where podman writes them, against the lab (events_logger
# = file):   podman_events_lab.sh openssh|libssh2
# The plugin says it follows the events log; the remote reader is one tail
# whose follow is inotify-driven (an inotify fd with a watch, no polling) and
# no `podman events` runs; the lab's containers.conf naming the file logger,
# the reader starts on its word and `podman info` checks it once the list is
# in (once per host: not at the next sync; an answer other than "file"
# restarts the watch on podman's logger); starts and stops arrive through
# it; the log replaced by a rotation is not replayed as events but
# resynced, and events arrive again after it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

transport=${1:?transport}
case $transport in
openssh) base=23400 ;;
libssh2) base=24400 ;;
libssh) base=30500 ;;
*) echo "unknown transport $transport"; exit 2 ;;
esac
[ -f "$RDHPF_PLUGIN_DIR/transport-$transport.so" ] || { echo "SKIP: transport $transport not built"; exit 77; }
log=$RDHPF_LAB_PODMAN_EVENTS_LOG
pfx=rdhpf-pev-$transport
engine() { $RDHPF_LAB_PODMAN "$@"; }
rmc() { engine rm -f -t 0 "$@" >/dev/null 2>&1 || true; }
cleanup_containers() { for c in $(engine ps -aq --filter "name=$pfx" 2>/dev/null); do rmc "$c"; done; }
cleanup_containers
trap 'cleanup_containers; cleanup' EXIT
serves() { lab_http_ok 127.0.0.1 "$1"; }
refuses() { ! lab_http_ok 127.0.0.1 "$1"; }
# The remote readers of the lab's events log: tail processes on that path.
readers() { pgrep -f -x "tail -c \+[0-9]+ -F -- $log" | sort || true; }
logged() { grep -c -F -- "$1" "$T/log" || true; }

# The podman the plugin runs, wrapped to record what it was asked (sshd
# runs in the lab's network namespace on this same filesystem, as root).
# `podman info` waits for $T/info-go (at most 20 s), then answers as
# podman does, or with what $T/info-answer holds.
cat >"$T/podman-wrap" <<W
#!/bin/sh
printf '%s\\n' "\$*" >>"$T/podman-calls"
if [ "\$1" = info ]; then
	i=0
	while [ ! -e "$T/info-go" ] && [ \$i -lt 200 ]; do sleep 0.1; i=\$((i + 1)); done
	[ -e "$T/info-answer" ] && exec cat "$T/info-answer"
fi
exec podman "\$@"
W
chmod 755 "$T/podman-wrap"
: >"$T/podman-calls"

cat >"$T/config.ini" <<C
[host "lab"]
url = $RDHPF_LAB_URL
identity_file = $RDHPF_LAB_KEY
known_hosts = $RDHPF_LAB_KNOWN_HOSTS
transport = $transport
runtime = podman
podman = $T/podman-wrap
backoff_initial = 100ms
backoff_max = 500ms
backoff_jitter = 0
connect_timeout = 5s
C

readers >"$T/readers.before"
start_daemon --config "$T/config.ini"
check "synced" wait_for 15000 grep -q 'msg="synced"' "$T/log"
check "the plugin says it follows the events log" \
	grep -q "msg=\"podman events: following the events log\".*reader=file path=$log" "$T/log"
new_readers() { readers >"$T/readers.now"; comm -13 "$T/readers.before" "$T/readers.now"; }
has_new_reader() { [ -n "$(new_readers)" ]; }
wait_for 3000 has_new_reader || true
mapfile -t tails < <(new_readers)
check "one remote tail -F reads the events log" test "${#tails[@]}" -eq 1
if [ "${#tails[@]}" -eq 1 ]; then
	# An inotify instance shows in fdinfo as "inotify wd:…" lines: tail
	# waits on it, it does not poll the file.
	check "the tail follows the log with inotify" \
		bash -c "cat /proc/${tails[0]}/fdinfo/* 2>/dev/null | grep -q '^inotify wd:'"
fi
check "no podman events process is the reader" test "$(logged 'reader=podman-events')" -eq 0
# The lab's containers.conf says events_logger = "file": the file reader
# starts on its word and the sync ends; then `podman info` (~0.5 s, held
# here until info-go) checks it.
ninfo() { grep -c '^info' "$T/podman-calls" || true; }
check "podman ran (the wrapper saw it)" grep -q '^ps ' "$T/podman-calls"
info_once() { [ "$(ninfo)" -eq 1 ]; }
check "podman info asked once the list was in (10 s after)" wait_for 15000 info_once
touch "$T/info-go"
check "podman info's answer taken" wait_for 5000 grep -q "podman info names the reader's logger" "$T/log"

engine run -d --name "$pfx-a" -p $((base + 1)):80 "$RDHPF_LAB_IMAGE" >/dev/null
check "start arrives: forward serves" wait_for 5000 serves $((base + 1))
rmc "$pfx-a"
check "stop arrives: forward removed" wait_for 5000 refuses $((base + 1))

# A rotation as podman does it: the log replaced by a new file that starts
# with events already read.  Same bytes, so nothing is lost for anyone.
synced=$(logged 'msg="synced"')
cp -p "$log" "$log.rdhpf-rot" && mv -f "$log.rdhpf-rot" "$log"
check "rotation: resync, not a replay" wait_for 8000 grep -q 'podman events log rotated' "$T/log"
check "rotation: synced again" wait_for 8000 bash -c "[ \$(grep -c 'msg=\"synced\"' '$T/log') -gt $synced ]"
engine run -d --name "$pfx-b" -p $((base + 2)):80 "$RDHPF_LAB_IMAGE" >/dev/null
check "after the rotation: start arrives" wait_for 5000 serves $((base + 2))
rmc "$pfx-b"
check "after the rotation: stop arrives" wait_for 5000 refuses $((base + 2))
check "the resync did not ask podman info again" test "$(ninfo)" -eq 1

check "clean SIGTERM" stop_daemon
check "the remote tail ended with the daemon" wait_for 5000 bash -c "[ -z \"\$(comm -13 '$T/readers.before' <(pgrep -f -x 'tail -c \\+[0-9]+ -F -- $log' | sort))\" ]"

# podman's answer differs from containers.conf's (a file podman reads that
# we do not, a flag in a wrapper): the file reader stops and the watch
# starts again with podman's logger; nothing is lost (the resync lists).
echo bogus >"$T/info-answer"
mv "$T/log" "$T/log.1"
start_daemon --config "$T/config.ini"
check "mismatch: said, naming podman's logger" \
	wait_for 20000 grep -q 'containers.conf names the file logger but podman uses another.*logger=bogus' "$T/log"
check "mismatch: podman's logger followed (podman events)" \
	wait_for 15000 grep -q "msg=\"podman events: running podman events\".*events_logger is 'bogus'" "$T/log"
check "mismatch: synced with podman's logger" wait_for 15000 \
	awk '/running podman events/ {f = 1} f && /msg="synced"/ {ok = 1} END {exit !ok}' "$T/log"
engine run -d --name "$pfx-c" -p $((base + 3)):80 "$RDHPF_LAB_IMAGE" >/dev/null
check "mismatch: start arrives" wait_for 8000 serves $((base + 3))
rmc "$pfx-c"
check "mismatch: stop arrives" wait_for 8000 refuses $((base + 3))
check "clean SIGTERM (2)" stop_daemon
finish
