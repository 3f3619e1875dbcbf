#!/usr/bin/env bash
# The remote engine as a local socket (engine_socket): `rdhpf env` prints
# DOCKER_HOST for it; docker ps, docker run --rm (a hijacked attach with a
# half-close) and docker inspect work through it over the host's one SSH
# connection; while the link is down a client is closed at once, not hung.
#   engine_socket_lab.sh TRANSPORT
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

transport=${1:?transport}
[ -f "$RDHPF_PLUGIN_DIR/transport-$transport.so" ] || { echo "SKIP: transport $transport not built"; exit 77; }
name=rdhpf-e2e-engine-$transport
$RDHPF_LAB_DOCKER rm -f "$name" >/dev/null 2>&1 || true
trap '$RDHPF_LAB_DOCKER rm -f "$name" >/dev/null 2>&1 || true; lab_sshd_start >/dev/null 2>&1 || true; cleanup' EXIT

{
	lab_host_section "$transport" docker
	cat <<C
engine_socket = $RDHPF_LAB_DOCKER_SOCK
backoff_initial = 100ms
backoff_max = 500ms
C
} >"$T/config.ini"
rc=0
"$RDHPF_BIN" env --config "$T/config.ini" --runtime-dir "$T/run" lab >"$T/env" 2>"$T/env.err" || rc=$?
check "rdhpf env before the daemon runs: prints the export, warns the socket is not there yet" \
	bash -c "[ $rc = 0 ] && grep -q '^export DOCKER_HOST=unix://$T/run/engine-lab.sock\$' '$T/env' && grep -q 'does not exist yet' '$T/env.err'"
start_daemon --config "$T/config.ini"
check "engine socket appears, mode 0600" wait_for 5000 bash -c "[ \"\$(stat -c %a '$T/run/engine-lab.sock')\" = 600 ]"
check "host steady" wait_for 10000 bash -c "'$RDHPF_BIN' status --runtime-dir '$T/run' --format json | grep -q '\"state\": \"steady\"'"
eval "$("$RDHPF_BIN" env --config "$T/config.ini" --runtime-dir "$T/run" lab)"
conn0=$(lab_sshd_accepted_count)
check "docker ps through the engine socket" timeout 20 docker ps
check "docker run --rm through it prints the container's output" \
	bash -c "timeout 30 docker run --rm --name '$name' '$RDHPF_LAB_IMAGE' echo engine-ok | grep -qx engine-ok"
$RDHPF_LAB_DOCKER run -d --name "$name" -p 25201:80 "$RDHPF_LAB_IMAGE" >/dev/null
check "docker inspect through it sees the lab's container" \
	bash -c "timeout 20 docker inspect -f '{{.Name}}' '$name' | grep -qx '/$name'"
for _ in $(seq 20); do timeout 20 docker ps -q >/dev/null || break; done
check "20 more docker ps: no new SSH connection" test "$(lab_sshd_accepted_count)" -eq "$conn0"
unset DOCKER_HOST
lab_sshd_stop
check "rdhpf sees the link down" wait_for 15000 bash -c \
	"'$RDHPF_BIN' status --runtime-dir '$T/run' --format json | grep -Eq '\"state\": \"(backoff|connecting|breaker-open)\"'"
rc=0
timeout 5 docker -H "unix://$T/run/engine-lab.sock" ps >/dev/null 2>&1 || rc=$?
check "link down: a client is closed at once, not hung (docker exit $rc)" bash -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
lab_sshd_start
check "link back: docker ps works again" wait_for 15000 timeout 5 docker -H "unix://$T/run/engine-lab.sock" ps
rc=0
stop_daemon || rc=$?
check "SIGTERM: exit 0, socket removed" bash -c "[ $rc = 0 ] && [ ! -e '$T/run/engine-lab.sock' ]"
finish
