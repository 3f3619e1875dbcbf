#!/usr/bin/env bash
# The libssh2 transport against the lab: a container's published port is
# forwarded and served, refused once removed; exec and the remote Unix
# socket work; host keys are strict (mismatch, unknown, @revoked, unreadable
# file) with errors naming host and key type; known_hosts lines libssh2
# cannot parse do not hide later ones; an RSA client key is refused with
# the libssh2 1.10 explanation; one TCP connection to sshd per session.
. "$(dirname "$0")/libssh2_lib.sh"

name=rdhpf-ls2-web-$$
rport=$(free_ns_port)
lport=$(free_port)

ls2_extra_cleanup() {
	lab_docker rm -f "$name" >/dev/null 2>&1 || true
}

lab_docker run -d --name "$name" -p "127.0.0.1:$rport:80" "$RDHPF_LAB_IMAGE" httpd -f -p 80 -h /www >/dev/null
check "the container serves inside the lab" lab_wait_for 15 lab_ns_http_ok 127.0.0.1 "$rport"

ls2_driver fwd connect "add 127.0.0.1:$lport:127.0.0.1:$rport" "print added" \
	"exec echo remote-ok" \
	"unix $RDHPF_LAB_DOCKER_SOCK GET /_ping HTTP/1.0\r\n\r\n" \
	"print streams-done" "sleep 3000" "remove 127.0.0.1:$lport:127.0.0.1:$rport" \
	"print removed" "sleep 60000"
check "connect and add" wait_line fwd 'print added' 10
check "curl through the forward serves the container" http_get "$lport"
check "exec runs a remote command" wait_line fwd 'exec OK .*exit=0 .*first="remote-ok"' 10
check "open_unix reaches the docker socket" wait_line fwd 'unix OK .*first="HTTP/1.[01] 200 OK"' 10
wait_line fwd 'print streams-done' 10 || true
nconn=$(ss -Htnp state established dst "$RDHPF_LAB_ADDR:22" | grep -c "pid=$LS2_DRIVER_PID," || true)
check "one TCP connection to sshd carries forward, exec and unix stream ($nconn)" test "$nconn" = 1
check "remove completes" wait_line fwd 'print removed' 10
rc=0
curl -sS --noproxy '*' -m 2 -o /dev/null "http://127.0.0.1:$lport/" 2>/dev/null || rc=$?
check "after remove the local port is refused (curl exit $rc, 7 = refused)" test "$rc" = 7

# Host keys: strict by default.
ls2_hk() { # ls2_hk NAME KNOWN_HOSTS → runs connect, output in NAME.out
	"$RDHPF_TDRIVER" --plugin-dir "$RDHPF_PLUGIN_DIR" --transport libssh2 --url "$RDHPF_LAB_URL" \
		--identity "$RDHPF_LAB_KEY" --known-hosts "$2" --runtime-dir "$LS2_T/run-$1" connect \
		>"$LS2_T/$1.out" 2>"$LS2_T/$1.err" || true
}
ls2_hk wrong "$RDHPF_LAB_KNOWN_HOSTS_WRONG"
check "wrong host key: HOSTKEY error naming host and key type" \
	grep -qE "connect ERR HOSTKEY .*MISMATCH for $RDHPF_LAB_ADDR: .*(ssh-ed25519|ecdsa-sha2-nistp256) key SHA256:" "$LS2_T/wrong.out"
: >"$LS2_T/empty_known_hosts"
ls2_hk unknown "$LS2_T/empty_known_hosts"
check "unknown host: HOSTKEY error naming host and key type" \
	grep -qE "connect ERR HOSTKEY .*host $RDHPF_LAB_ADDR is not in .*(ssh-ed25519|ecdsa-sha2-nistp[0-9]+) key SHA256:" "$LS2_T/unknown.out"
ls2_hk nofile "$LS2_T/does-not-exist"
check "unreadable known_hosts: HOSTKEY error" grep -q "connect ERR HOSTKEY .*cannot read known_hosts" "$LS2_T/nofile.out"
{
	echo "# lines libssh2 cannot parse must not hide the ones after them"
	echo "@cert-authority *.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpFBgVOeEXJ1E0hDvqAF4GF5t6sThyDBI6Se1kVxmCB"
	echo "this is not a known_hosts line"
	echo "10.231.77.9 sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t"
	cat "$RDHPF_LAB_KNOWN_HOSTS"
} >"$LS2_T/messy_known_hosts"
ls2_hk messy "$LS2_T/messy_known_hosts"
check "known_hosts read line by line: later lines still count" grep -q "connect OK" "$LS2_T/messy.out"
{
	grep "^$RDHPF_LAB_ADDR ssh-ed25519" "$RDHPF_LAB_KNOWN_HOSTS" | sed 's/^/@revoked /'
	cat "$RDHPF_LAB_KNOWN_HOSTS"
} >"$LS2_T/revoked_known_hosts"
ls2_hk revoked "$LS2_T/revoked_known_hosts"
check "@revoked host key is refused" grep -q "connect ERR HOSTKEY .*@revoked" "$LS2_T/revoked.out"

# An RSA client key: 1.10 cannot sign with rsa-sha2-*, and says so.
ssh-keygen -q -t rsa -b 2048 -N '' -C rdhpf-ls2-test -f "$LS2_T/id_rsa"
"$RDHPF_TDRIVER" --plugin-dir "$RDHPF_PLUGIN_DIR" --transport libssh2 --url "$RDHPF_LAB_URL" \
	--identity "$LS2_T/id_rsa" --known-hosts "$RDHPF_LAB_KNOWN_HOSTS" --runtime-dir "$LS2_T/run-rsa" \
	--opt agent=no connect >"$LS2_T/rsa.out" 2>"$LS2_T/rsa.err" || true
check "RSA key refused: AUTH error explains rsa-sha2 and suggests ed25519/ECDSA" \
	grep -qE "connect ERR AUTH .*rsa-sha2-256/512.*ed25519 or ECDSA" "$LS2_T/rsa.out"

# ssh-agent first (libssh2 does its agent I/O through the session's
# callbacks): an unrelated key, then the lab's; no identity file, empty HOME.
agent_env=$(ssh-agent -s)
eval "$agent_env" >/dev/null
ls2_agent_pid=$SSH_AGENT_PID
ssh-keygen -q -t ed25519 -N '' -f "$LS2_T/other_ed25519"
ssh-add -q "$LS2_T/other_ed25519" 2>/dev/null
ssh-add -q "$RDHPF_LAB_KEY" 2>/dev/null
mkdir -p "$LS2_T/home"
HOME="$LS2_T/home" "$RDHPF_TDRIVER" --plugin-dir "$RDHPF_PLUGIN_DIR" --transport libssh2 \
	--url "$RDHPF_LAB_URL" --known-hosts "$RDHPF_LAB_KNOWN_HOSTS" --runtime-dir "$LS2_T/run-agent" \
	connect "exec echo via-agent" >"$LS2_T/agent.out" 2>"$LS2_T/agent.err" || true
kill "$ls2_agent_pid" 2>/dev/null || true
unset SSH_AUTH_SOCK SSH_AGENT_PID
check "ssh-agent authentication (second agent key)" \
	grep -q 'exec OK .*first="via-agent"' "$LS2_T/agent.out"

ls2_finish
