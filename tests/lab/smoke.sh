#!/usr/bin/env bash
# tests/lab/smoke.sh — prove the lab is a usable "remote host".
# Exit 0 pass, 1 fail, 77 skip (not root, outside CI).
set -euo pipefail

here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
# shellcheck source=tests/lab/lib.sh
source "$here/lib.sh"
lab_require

DOCKER_PORT=18091
PODMAN_PORT=18092
DOCKER_NAME=rdhpf-lab-smoke-docker
PODMAN_NAME=rdhpf-lab-smoke-podman

tmp=$(mktemp -d)
fwd_pid=
cleanup() {
	if [[ -n "$fwd_pid" ]]; then
		kill "$fwd_pid" 2>/dev/null || true
		wait "$fwd_pid" 2>/dev/null || true
	fi
	$RDHPF_LAB_DOCKER rm -f "$DOCKER_NAME" >/dev/null 2>&1 || true
	$RDHPF_LAB_PODMAN rm -f -t 0 "$PODMAN_NAME" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
check() {
	local what=$1
	shift
	printf 'check: %s ... ' "$what"
	if "$@" >"$tmp/out" 2>&1; then
		echo ok
	else
		echo FAILED
		sed 's/^/    | /' "$tmp/out"
		failures=$((failures + 1))
	fi
}

lab_ssh_strict() {
	ssh -F "$RDHPF_LAB_SSH_CONFIG" -o StrictHostKeyChecking=yes \
		"$RDHPF_LAB_USER@$RDHPF_LAB_ADDR" "$@"
}

accepted_before=$(lab_sshd_accepted_count)

check "ssh (strict host key checking) runs 'docker ps' on the lab" \
	lab_ssh_strict docker ps
check "ssh runs 'podman ps' on the lab" \
	lab_ssh_strict podman ps
check "the remote sees the lab engines (docker info / podman info)" \
	lab_ssh_strict 'docker info --format "{{.Name}}" && podman info --format "{{.Store.GraphRoot}}"'

dial_stdio() {
	local out
	out=$(printf 'GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n' |
		timeout 10 ssh -F "$RDHPF_LAB_SSH_CONFIG" "$RDHPF_LAB_SSH_HOST" docker system dial-stdio)
	echo "$out"
	grep -q '^OK' <<<"${out##*$'\r\n'}"
}
check "ssh 'docker system dial-stdio' answers /_ping" dial_stdio

streamlocal() {
	local sock="$tmp/docker.sock"
	ssh -F "$RDHPF_LAB_SSH_CONFIG" -N -o ExitOnForwardFailure=yes \
		-L "$sock:$RDHPF_LAB_DOCKER_SOCK" "$RDHPF_LAB_SSH_HOST" &
	fwd_pid=$!
	lab_wait_for 10 test -S "$sock"
	curl -fsS --max-time 5 --unix-socket "$sock" http://docker/_ping
	echo
	kill "$fwd_pid"
	wait "$fwd_pid" 2>/dev/null || true
	fwd_pid=
}
check "ssh forwards a local unix socket to the remote docker socket" streamlocal

wrong_key() {
	local rc=0
	ssh -F "$RDHPF_LAB_SSH_CONFIG" -o StrictHostKeyChecking=yes \
		-o UserKnownHostsFile="$RDHPF_LAB_KNOWN_HOSTS_WRONG" \
		"$RDHPF_LAB_USER@$RDHPF_LAB_ADDR" true 2>"$tmp/wrong.err" || rc=$?
	cat "$tmp/wrong.err"
	((rc != 0)) || {
		echo "ssh succeeded with known_hosts.wrong"
		return 1
	}
	grep -q 'Host key verification failed' "$tmp/wrong.err"
}
check "ssh with known_hosts.wrong fails host key verification" wrong_key

accepted_after=$(lab_sshd_accepted_count)
sshd_counts() {
	echo "Accepted publickey: before $accepted_before, after $accepted_after"
	# docker ps, podman ps, info, dial-stdio, -L: five connections; the
	# wrong-key attempt never authenticates.
	((accepted_after - accepted_before == 5))
}
check "sshd log counts one 'Accepted publickey' per connection" sshd_counts

docker_serves() {
	$RDHPF_LAB_DOCKER rm -f "$DOCKER_NAME" >/dev/null 2>&1 || true
	$RDHPF_LAB_DOCKER run -d --name "$DOCKER_NAME" -p "$DOCKER_PORT:80" "$RDHPF_LAB_IMAGE"
	lab_wait_for 15 lab_http_ok "$RDHPF_LAB_ADDR" "$DOCKER_PORT"
	curl -fsS --noproxy '*' --max-time 2 "http://$RDHPF_LAB_ADDR:$DOCKER_PORT/"
	lab_wait_for 5 lab_ns_http_ok 127.0.0.1 "$DOCKER_PORT"
}
check "a lab docker container published on :$DOCKER_PORT serves over the veth" docker_serves

podman_serves() {
	$RDHPF_LAB_PODMAN rm -f -t 0 "$PODMAN_NAME" >/dev/null 2>&1 || true
	# Started over ssh, like a real remote user would.
	lab_ssh_strict podman run -d --name "$PODMAN_NAME" -p "$PODMAN_PORT:80" "$RDHPF_LAB_IMAGE"
	lab_wait_for 15 lab_http_ok "$RDHPF_LAB_ADDR" "$PODMAN_PORT"
	curl -fsS --noproxy '*' --max-time 2 "http://$RDHPF_LAB_ADDR:$PODMAN_PORT/"
	lab_wait_for 5 lab_ns_http_ok 127.0.0.1 "$PODMAN_PORT"
	# The host-side command prefix sees the container started over ssh.
	grep -qx "$PODMAN_NAME" <<<"$($RDHPF_LAB_PODMAN ps --format '{{.Names}}')"
}
check "a lab podman container published on :$PODMAN_PORT serves over the veth" podman_serves

podman_events() {
	local since
	since=$(($(date +%s) - 1))
	$RDHPF_LAB_PODMAN restart -t 0 "$PODMAN_NAME" >/dev/null
	timeout 10 ssh -F "$RDHPF_LAB_SSH_CONFIG" "$RDHPF_LAB_SSH_HOST" \
		podman events --stream=false --format json --since "$since" \
		--filter "container=$PODMAN_NAME" --filter event=start | tee "$tmp/events"
	grep -q '"Status":"start"' "$tmp/events"
}
check "podman events (file logger) over ssh reports the container start" podman_events

echo
if ((failures)); then
	echo "FAIL: $failures check(s) failed"
	exit 1
fi
echo "PASS: lab smoke test"
