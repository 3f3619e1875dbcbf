#!/usr/bin/env bash
# The libssh transport against the lab, what is its own (the in-process
# behaviours it shares with libssh2 run from libssh2_{integrity,conc,
# outage,blackhole}.sh with LS2_TRANSPORT=libssh):
# - a forward serves, exec and the remote Unix socket work, over one TCP
#   connection to sshd;
# - host keys strict: changed and unknown keys refused with host, key type
#   and SHA256 fingerprint; known_hosts never written; a known_hosts with
#   only the server's RSA key works (rsa-sha2 host key signatures);
# - an RSA client key authenticates (rsa-sha2-256/512);
# - ssh_config (the ssh_config option): Host alias with HostName, Port,
#   User and IdentityFile applies; ProxyJump is refused, saying so;
# - ssh-agent first; an agent that never answers is skipped within the
#   probe's bound and the identity file still works;
# - the ciphers option decides the cipher; a bad list fails at create.
. "$(dirname "$0")/libssh2_lib.sh"
[[ "$LS2_TRANSPORT" == libssh ]] || { echo "usage: LS2_TRANSPORT=libssh $0"; exit 2; }

name=rdhpf-lsh-web-$$
rport=$(free_ns_port)
lport=$(free_port)
ak=$RDHPF_LAB_DIR/authorized_keys
rsa_tag=rdhpf-lsh-rsa-test-$$

ls2_extra_cleanup() {
	lab_docker rm -f "$name" >/dev/null 2>&1 || true
	# The RSA test key is authorized only while this test runs.
	if grep -q "$rsa_tag" "$ak" 2>/dev/null; then
		grep -v "$rsa_tag" "$ak" >"$ak.tmp.$$" && cat "$ak.tmp.$$" >"$ak"
		rm -f "$ak.tmp.$$"
	fi
	[[ -n "${agent_pid:-}" ]] && kill "$agent_pid" 2>/dev/null
	[[ -n "${mute_pid:-}" ]] && kill "$mute_pid" 2>/dev/null
	true
}

drv() { # drv NAME [tdriver options and commands...]: run to the end
	local n=$1
	shift
	"$RDHPF_TDRIVER" --plugin-dir "$RDHPF_PLUGIN_DIR" --transport libssh --runtime-dir "$LS2_T/run-$n" \
		--log-level info "$@" >"$LS2_T/$n.out" 2>"$LS2_T/$n.err" || true
}

lab_docker run -d --name "$name" -p "127.0.0.1:$rport:80" "$RDHPF_LAB_IMAGE" httpd -f -p 80 -h /www >/dev/null
check "the container serves inside the lab" lab_wait_for 15 lab_ns_http_ok 127.0.0.1 "$rport"

ls2_driver fwd --log-level info connect "add 127.0.0.1:$lport:127.0.0.1:$rport" "print added" \
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
if grep -qw aes /proc/cpuinfo; then want=aes128-gcm; else want=chacha20-poly1305; fi
check "default cipher: the fastest AEAD for this CPU ($want)" grep -q "ssh session up.*cipher=$want" "$LS2_T/fwd.err"

# ---- host keys ----
hk() { drv "$1" --url "$RDHPF_LAB_URL" --identity "$RDHPF_LAB_KEY" --known-hosts "$2" connect; }
cp "$RDHPF_LAB_KNOWN_HOSTS_WRONG" "$LS2_T/wrong_kh"
sum0=$(sha256sum <"$LS2_T/wrong_kh")
hk wrong "$LS2_T/wrong_kh"
check "changed host key: HOSTKEY error naming host, key type and SHA256 fingerprint" \
	grep -qE "connect ERR HOSTKEY .*host key of $RDHPF_LAB_ADDR port 22 \((ssh-ed25519|ecdsa-sha2-nistp[0-9]+|ssh-rsa) SHA256:[A-Za-z0-9+/]+\) CHANGED" "$LS2_T/wrong.out"
check "changed host key: known_hosts not written" test "$(sha256sum <"$LS2_T/wrong_kh")" = "$sum0"
: >"$LS2_T/empty_kh"
hk unknown "$LS2_T/empty_kh"
check "unknown host: HOSTKEY error naming host, key type and fingerprint" \
	grep -qE "connect ERR HOSTKEY .*host key of $RDHPF_LAB_ADDR port 22 \([a-z0-9-]+ SHA256:[A-Za-z0-9+/]+\) not known" "$LS2_T/unknown.out"
check "unknown host: known_hosts still empty" test ! -s "$LS2_T/empty_kh"
hk nofile "$LS2_T/does-not-exist"
check "missing known_hosts: HOSTKEY error, and no file created" \
	bash -c "grep -q 'connect ERR HOSTKEY' '$LS2_T/nofile.out' && test ! -e '$LS2_T/does-not-exist'"
echo "$RDHPF_LAB_ADDR $(cut -d' ' -f1,2 "$RDHPF_LAB_DIR/ssh_host_rsa_key.pub")" >"$LS2_T/rsa_kh"
hk rsahost "$LS2_T/rsa_kh"
check "a known_hosts with only the RSA host key works (rsa-sha2)" grep -q "connect OK" "$LS2_T/rsahost.out"

# ---- an RSA client key (rsa-sha2-256/512) ----
ssh-keygen -q -t rsa -b 3072 -N '' -C "$rsa_tag" -f "$LS2_T/id_rsa"
cat "$LS2_T/id_rsa.pub" >>"$ak"
drv rsa --url "$RDHPF_LAB_URL" --identity "$LS2_T/id_rsa" --known-hosts "$RDHPF_LAB_KNOWN_HOSTS" \
	--opt agent=no connect "exec echo via-rsa"
check "RSA client key authenticates" grep -q 'exec OK .*first="via-rsa"' "$LS2_T/rsa.out"
ls2_extra_cleanup

# ---- ssh_config ----
cat >"$LS2_T/ssh_config" <<C
Host rdhpf-lsh-alias
	HostName $RDHPF_LAB_ADDR
	Port $RDHPF_LAB_PORT
	User $RDHPF_LAB_USER
	IdentityFile $RDHPF_LAB_KEY
Host rdhpf-lsh-jump
	HostName $RDHPF_LAB_ADDR
	ProxyJump root@127.0.0.1
C
mkdir -p "$LS2_T/home"
HOME=$LS2_T/home drv cfg --url ssh://rdhpf-lsh-alias --known-hosts "$RDHPF_LAB_KNOWN_HOSTS" \
	--opt ssh_config="$LS2_T/ssh_config" --opt agent=no connect "exec echo via-config"
check "ssh_config: Host alias with HostName, Port, User, IdentityFile" \
	grep -q 'exec OK .*first="via-config"' "$LS2_T/cfg.out"
HOME=$LS2_T/home drv jump --url ssh://rdhpf-lsh-jump --known-hosts "$RDHPF_LAB_KNOWN_HOSTS" \
	--identity "$RDHPF_LAB_KEY" --opt ssh_config="$LS2_T/ssh_config" connect
check "ssh_config: ProxyJump refused, saying so" grep -qE "connect ERR .*ProxyCommand or ProxyJump" "$LS2_T/jump.out"
HOME=$LS2_T/home drv nocfg --url ssh://rdhpf-lsh-alias --known-hosts "$RDHPF_LAB_KNOWN_HOSTS" \
	--identity "$RDHPF_LAB_KEY" --opt ssh_config=none --connect-timeout 3000 connect
check "ssh_config=none: the alias means nothing" grep -q "connect ERR" "$LS2_T/nocfg.out"

# ---- ssh-agent ----
eval "$(ssh-agent -s)" >/dev/null
agent_pid=$SSH_AGENT_PID
ssh-keygen -q -t ed25519 -N '' -f "$LS2_T/other_ed25519"
ssh-add -q "$LS2_T/other_ed25519" 2>/dev/null
ssh-add -q "$RDHPF_LAB_KEY" 2>/dev/null
HOME=$LS2_T/home drv agent --url "$RDHPF_LAB_URL" --known-hosts "$RDHPF_LAB_KNOWN_HOSTS" \
	connect "exec echo via-agent"
kill "$agent_pid" 2>/dev/null || true
agent_pid=
check "ssh-agent authentication (second agent key, no identity file)" \
	grep -q 'exec OK .*first="via-agent"' "$LS2_T/agent.out"
# An agent that accepts and never answers: probed, skipped, no hang.
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' "$LS2_T/mute.sock" &
mute_pid=$!
lab_wait_for 5 test -S "$LS2_T/mute.sock"
t0=$(now_ms)
SSH_AUTH_SOCK=$LS2_T/mute.sock HOME=$LS2_T/home drv mute --url "$RDHPF_LAB_URL" \
	--known-hosts "$RDHPF_LAB_KNOWN_HOSTS" --identity "$RDHPF_LAB_KEY" --connect-timeout 8000 \
	connect "exec echo past-mute-agent"
ms=$(($(now_ms) - t0))
kill "$mute_pid" 2>/dev/null || true
mute_pid=
check "a mute ssh-agent is skipped; identity_file authenticates (${ms} ms)" \
	grep -q 'exec OK .*first="past-mute-agent"' "$LS2_T/mute.out"
check "the mute agent cost at most the probe bound (1 s) plus slack (${ms} ms < 4000)" test "$ms" -lt 4000
check "the log says the agent did not answer" grep -q "ssh-agent did not answer" "$LS2_T/mute.err"
unset SSH_AUTH_SOCK SSH_AGENT_PID

# ---- ciphers ----
drv chacha --url "$RDHPF_LAB_URL" --identity "$RDHPF_LAB_KEY" --known-hosts "$RDHPF_LAB_KNOWN_HOSTS" \
	--opt ciphers=chacha20-poly1305@openssh.com connect
check "ciphers option: chacha20-poly1305 negotiated" grep -q "ssh session up.*cipher=chacha20-poly1305" "$LS2_T/chacha.err"
drv badc --url "$RDHPF_LAB_URL" --identity "$RDHPF_LAB_KEY" --known-hosts "$RDHPF_LAB_KNOWN_HOSTS" \
	--opt ciphers=rot13 connect
check "ciphers option: a list naming nothing known fails, naming the key" \
	grep -qi "ciphers: 'rot13'" "$LS2_T/badc.out" "$LS2_T/badc.err"

ls2_finish
