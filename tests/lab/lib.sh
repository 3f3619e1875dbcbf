# shellcheck shell=bash
# tests/lab/lib.sh — the rdhpf lab: a "remote host" in a network namespace.
#
# Sourced by tests/lab/{up,down,env,smoke.sh} and by every lab test. Sourcing
# only defines variables and functions; nothing is started until a function
# is called. Public API (for tests): the lab_* functions at the end of this
# file. Everything prefixed _lab_ is internal.
#
# Layout (see also tests/lab/env, which prints the RDHPF_LAB_* variables):
#   netns rdhpf-lab, veth rdhpf-lab0 (host, 10.231.77.1/30) <-> rdhpf-lab1
#   (namespace, 10.231.77.2/30). Inside the namespace: sshd on
#   10.231.77.2:22, containerd + dockerd, and the lab's podman store (podman
#   is daemonless; its containers get their network in the namespace).
#
# All daemons are entered into the namespace with `nsenter --net=` only, so
# they share the host mount namespace: `ip netns exec` would remount /sys
# (hiding the cgroup mounts dockerd and podman need) and would give every
# invocation a private mount namespace, so podman's overlay mounts made in
# one ssh session would be invisible to the next.

if [[ -n "${_RDHPF_LAB_LIB_LOADED:-}" ]]; then
	return 0
fi
_RDHPF_LAB_LIB_LOADED=1

LAB_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# A second lab can run beside this one (scripts/fresh-check runs one in a
# fresh root file system while this machine's lab may be up): it takes another
# namespace name (interface names derive from it: at most 13 characters) and
# another /30.
LAB_NETNS=${RDHPF_LAB_NETNS:-rdhpf-lab}
LAB_NETNS_PATH=/run/netns/$LAB_NETNS
LAB_VETH_HOST=${LAB_NETNS}0
LAB_VETH_NS=${LAB_NETNS}1
LAB_NET24=${RDHPF_LAB_NET24:-10.231.77}
LAB_HOST_ADDR=$LAB_NET24.1
LAB_ADDR=$LAB_NET24.2
LAB_PREFIXLEN=30
LAB_SSH_PORT=22
LAB_SSH_USER=root
LAB_SSH_ALIAS=rdhpf-lab
LAB_IMAGE=rdhpf-lab/busybox:latest
LAB_DOCKER_BIP=172.31.250.1/24
LAB_DOCKER_CGROUP_PARENT=$LAB_NETNS-docker
# Ports used by `up` to prove that publishing works; freed again right away.
LAB_VERIFY_DOCKER_PORT=18099
LAB_VERIFY_PODMAN_PORT=18096

LAB_DIR="${RDHPF_LAB_DIR:-/var/tmp/rdhpf-lab}"
case "$LAB_DIR" in
/*) ;;
*) LAB_DIR="$PWD/$LAB_DIR" ;;
esac
LAB_DIR="${LAB_DIR%/}"

LAB_LOCK="$LAB_DIR/.lock"
# Volatile runtime state (like /run): wiped by `down`.
LAB_RUN="$LAB_DIR/run"

LAB_SSHD_CONFIG="$LAB_DIR/sshd_config"
LAB_SSHD_LOG="$LAB_DIR/sshd.log"
LAB_SSHD_PID="$LAB_DIR/sshd.pid"
LAB_HOSTKEY_TYPES=(ed25519 ecdsa rsa)
LAB_WRONG_KEY_DIR="$LAB_DIR/wrong-hostkeys"
LAB_KEY="$LAB_DIR/id_ed25519"
LAB_AUTH_KEYS="$LAB_DIR/authorized_keys"
LAB_KNOWN_HOSTS="$LAB_DIR/known_hosts"
LAB_KNOWN_HOSTS_WRONG="$LAB_DIR/known_hosts.wrong"
LAB_SSH_CONFIG="$LAB_DIR/ssh_config"
# HOME of ssh sessions on the "remote": an empty directory, so the machine's
# own /root/.bashrc (pyenv etc., ~130 ms) does not run for every remote command.
LAB_REMOTE_HOME="$LAB_DIR/home"

LAB_CTRD_CONFIG="$LAB_DIR/containerd.toml"
LAB_CTRD_ROOT="$LAB_DIR/containerd"
LAB_CTRD_STATE="$LAB_RUN/containerd"
LAB_CTRD_SOCK="$LAB_RUN/containerd/containerd.sock"
LAB_CTRD_LOG="$LAB_DIR/containerd.log"

LAB_DOCKER_ROOT="$LAB_DIR/docker"
LAB_DOCKER_EXEC="$LAB_RUN/docker"
LAB_DOCKER_SOCK="$LAB_DIR/docker.sock"
LAB_DOCKER_PID="$LAB_DIR/docker.pid"
LAB_DOCKERD_LOG="$LAB_DIR/dockerd.log"
LAB_DOCKERD_CONFIG="$LAB_DIR/daemon.json"
LAB_DOCKER_DRIVER_FILE="$LAB_DIR/docker.storage-driver"

LAB_PODMAN_DIR="$LAB_DIR/podman"
LAB_CONTAINERS_CONF="$LAB_PODMAN_DIR/containers.conf"
LAB_STORAGE_CONF="$LAB_PODMAN_DIR/storage.conf"
LAB_REGISTRIES_CONF="$LAB_PODMAN_DIR/registries.conf"
LAB_PODMAN_GRAPHROOT="$LAB_PODMAN_DIR/storage"
LAB_PODMAN_NETWORKS="$LAB_PODMAN_DIR/networks"
LAB_PODMAN_VOLUMES="$LAB_PODMAN_DIR/volumes"
LAB_PODMAN_EVENTS_LOG="$LAB_PODMAN_DIR/events.log"
LAB_PODMAN_RUNROOT="$LAB_RUN/podman-run"
LAB_PODMAN_TMP="$LAB_RUN/podman-tmp"
LAB_PODMAN_DRIVER_FILE="$LAB_DIR/podman.storage-driver"

LAB_IMAGE_DIR="$LAB_DIR/image"
LAB_IMAGE_TAR="$LAB_IMAGE_DIR/rootfs.tar"

LAB_MARK_DOCKER="$LAB_RUN/verified.docker"
LAB_MARK_PODMAN="$LAB_RUN/verified.podman"
# Why podman could not come up (only with RDHPF_LAB_PODMAN_OPTIONAL=1).
LAB_PODMAN_UNAVAILABLE="$LAB_RUN/podman.unavailable"

# ---------------------------------------------------------------------------
# internal helpers
# ---------------------------------------------------------------------------

_lab_say() {
	if [[ "${LAB_QUIET:-0}" != 1 ]]; then
		printf 'lab: %s\n' "$*" >&2
	fi
}

_lab_die() {
	printf 'lab: ERROR: %s\n' "$*" >&2
	exit 1
}

_lab_now_us() {
	local t=${EPOCHREALTIME/[.,]/}
	printf '%s\n' "$((10#$t))"
}

# Run a command inside the lab's network namespace (host mount namespace).
_lab_ns() {
	nsenter --net="$LAB_NETNS_PATH" "$@"
}

# The namespace's id as shown by `ps -o netns` (its nsfs inode); empty if none.
_lab_netns_id() {
	stat -L -c %i "$LAB_NETNS_PATH" 2>/dev/null || true
}

# PIDs (not zombies) whose command name is $1 and whose argv contains $2.
_lab_pids_by_args() {
	ps -e -o pid=,stat=,comm=,args= | awk -v c="$1" -v s="$2" \
		'$3 == c && $2 !~ /^Z/ && index($0, s) { print $1 }'
}

# PIDs (not zombies) living in the lab's network namespace.
_lab_pids_in_netns() {
	local id
	id=$(_lab_netns_id)
	[[ -n "$id" ]] || return 0
	ps -e -o pid=,stat=,netns= | awk -v id="$id" '$3 == id && $2 !~ /^Z/ { print $1 }'
}

# Filter the PIDs on stdin: keep those in the lab namespace ($1 = yes) or
# outside it ($1 = no).
_lab_filter_netns() {
	local want=$1 id list
	id=$(_lab_netns_id)
	local -a pids
	mapfile -t pids
	((${#pids[@]})) || return 0
	list=$(
		IFS=,
		echo "${pids[*]}"
	)
	ps -o pid=,netns= -p "$list" 2>/dev/null | awk -v id="$id" -v want="$want" '
		{ inside = (id != "" && $2 == id) }
		(want == "yes" && inside) || (want == "no" && !inside) { print $1 }' || true
}

# Print the given PIDs plus all their descendants.
_lab_with_descendants() {
	(($#)) || return 0
	ps -e -o pid=,ppid= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
		{ parent[$1] = $2; pids[NR] = $1 }
		END {
			changed = 1
			while (changed) {
				changed = 0
				for (i in pids) {
					p = pids[i]
					if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 }
				}
			}
			for (p in keep) print p
		}'
}

# Which of the given PIDs are still alive (zombies count as dead).
_lab_alive() {
	(($#)) || return 0
	local list
	list=$(
		IFS=,
		echo "$*"
	)
	ps -o pid=,stat= -p "$list" 2>/dev/null | awk '$2 !~ /^Z/ { print $1 }' || true
}

# _lab_kill SIGNAL TIMEOUT_S PID...: signal, wait up to TIMEOUT_S, then SIGKILL.
_lab_kill() {
	local sig=$1 timeout=$2
	shift 2
	local -a pids=("$@")
	((${#pids[@]})) || return 0
	kill "-$sig" "${pids[@]}" 2>/dev/null || true
	local deadline left
	deadline=$(($(_lab_now_us) + timeout * 1000000))
	while :; do
		left=$(_lab_alive "${pids[@]}")
		[[ -n "$left" ]] || return 0
		(($(_lab_now_us) < deadline)) || break
		sleep 0.05
	done
	# shellcheck disable=SC2086
	kill -KILL $left 2>/dev/null || true
	deadline=$(($(_lab_now_us) + 5000000))
	while :; do
		left=$(_lab_alive "${pids[@]}")
		[[ -n "$left" ]] || return 0
		(($(_lab_now_us) < deadline)) || break
		sleep 0.05
	done
	_lab_say "warning: processes survived SIGKILL: ${left//$'\n'/ }"
	return 1
}

# _lab_spawn LOG CMD...: start CMD detached (own session, stdio to LOG, no
# inherited fds such as the lab lock), so callers capturing output never hang.
_lab_spawn() {
	local log=$1
	shift
	(
		cd /
		for fd in "/proc/$BASHPID/fd/"*; do
			fd=${fd##*/}
			if ((fd > 2)); then
				eval "exec $fd>&-"
			fi
		done
		exec setsid "$@" </dev/null >>"$log" 2>&1
	) &
}

# _lab_write PATH MODE < content: replace PATH if the content differs.
# Returns 0 when the file changed, 1 when it was already up to date.
_lab_write() {
	local path=$1 mode=$2 tmp
	tmp="$path.tmp.$$"
	cat >"$tmp"
	chmod "$mode" "$tmp"
	if [[ -f "$path" ]] && cmp -s "$tmp" "$path"; then
		rm -f "$tmp"
		return 1
	fi
	mv -f "$tmp" "$path"
	return 0
}

_lab_have() {
	command -v "$1" >/dev/null 2>&1
}

# The Debian package a program comes from, from scripts/programs.list (the
# one list of programs the project runs; tests/deps checks it against dpkg).
_lab_package_of() {
	local list="$LAB_SCRIPT_DIR/../../scripts/programs.list" want=$1
	awk -v p="$want" '!/^#/ && NF >= 2 {
		n = $1; sub(/.*\//, "", n)
		if ($1 == p || n == p) { print $2; exit }
	}' "$list" 2>/dev/null
}

# _lab_missing PROGRAM...: print "PROGRAM (package P)" for each one not installed.
_lab_missing() {
	local t pkg
	for t in "$@"; do
		_lab_have "$t" && continue
		pkg=$(_lab_package_of "$t")
		printf '%s (Debian package %s)\n' "$t" "${pkg:-unknown}"
	done
}

_lab_missing_hint() {
	printf '%s; install with: apt-get install %s (or run scripts/deps)' \
		"$(paste -sd, - <<<"$1" | sed 's/,/, /g')" \
		"$(sed -n 's/.*(Debian package \(.*\))/\1/p' <<<"$1" | sort -u | paste -sd' ' -)"
}

# What the lab needs for sshd and dockerd; podman's own needs are checked
# separately (_lab_podman_missing) because the demo can go without podman.
_lab_check_tools() {
	local missing
	missing=$(_lab_missing ip nsenter setsid flock ss ps awk curl iptables ssh ssh-keygen \
		/usr/sbin/sshd containerd containerd-shim-runc-v2 runc dockerd docker-proxy docker tar \
		/bin/busybox)
	[[ -z "$missing" ]] || _lab_die "missing programs: $(_lab_missing_hint "$missing")"
	# Unix socket paths are limited to 107 bytes; docker and containerd put
	# sockets a few levels below these directories.
	((${#LAB_DIR} <= 40)) || _lab_die "RDHPF_LAB_DIR is too long for unix socket paths (max 40 chars): $LAB_DIR"
	((${#LAB_NETNS} <= 13)) || _lab_die "RDHPF_LAB_NETNS is too long for interface names (max 13 chars): $LAB_NETNS"
}

_lab_podman_missing() {
	_lab_missing podman conmon runc /usr/lib/podman/netavark /usr/lib/podman/aardvark-dns
}

# Who holds the lab's lock (pid and command), for a message while waiting.
_lab_lock_holders() {
	local fd pid
	for fd in /proc/[0-9]*/fd/*; do
		[[ "$(readlink "$fd" 2>/dev/null)" == "$LAB_LOCK" ]] || continue
		pid=${fd#/proc/}
		pid=${pid%%/*}
		[[ "$pid" == "$BASHPID" || "$pid" == "$$" ]] && continue
		printf '%s (%s) ' "$pid" "$(ps -o args= -p "$pid" 2>/dev/null | cut -c1-80)"
	done
}

_lab_lock() {
	install -d -m 0700 "$LAB_DIR"
	exec 9>"$LAB_LOCK"
	flock -n 9 && return 0
	_lab_say "waiting for the lab lock, held by: $(_lab_lock_holders)"
	flock -w 300 9 || _lab_die "could not take $LAB_LOCK in 300 s; held by: $(_lab_lock_holders)"
}

# ---------------------------------------------------------------------------
# network: namespace + veth pair
# ---------------------------------------------------------------------------

_lab_net_ok() {
	[[ -e "$LAB_NETNS_PATH" ]] || return 1
	[[ -n "$(_lab_netns_id)" ]] || return 1
	ip -o addr show dev "$LAB_VETH_HOST" 2>/dev/null | grep -qF "inet $LAB_HOST_ADDR/$LAB_PREFIXLEN" || return 1
	ip -o link show dev "$LAB_VETH_HOST" 2>/dev/null | grep -q 'state UP' || return 1
	ip -n "$LAB_NETNS" -o addr show dev "$LAB_VETH_NS" 2>/dev/null | grep -qF "inet $LAB_ADDR/$LAB_PREFIXLEN" || return 1
	ip -n "$LAB_NETNS" -o link show dev lo 2>/dev/null | grep -q 'UP' || return 1
	return 0
}

_lab_net_up() {
	if ! ip netns list 2>/dev/null | grep -qE "^$LAB_NETNS( |\$)"; then
		_lab_say "creating network namespace $LAB_NETNS"
		ip netns add "$LAB_NETNS"
	fi
	if ! ip link show dev "$LAB_VETH_HOST" >/dev/null 2>&1 ||
		! ip -n "$LAB_NETNS" link show dev "$LAB_VETH_NS" >/dev/null 2>&1; then
		_lab_say "creating veth $LAB_VETH_HOST <-> $LAB_NETNS:$LAB_VETH_NS"
		ip link del "$LAB_VETH_HOST" 2>/dev/null || true
		ip -n "$LAB_NETNS" link del "$LAB_VETH_NS" 2>/dev/null || true
		ip link add "$LAB_VETH_HOST" type veth peer name "$LAB_VETH_NS" netns "$LAB_NETNS"
	fi
	# Keep the link quiet: no IPv6 autoconfiguration chatter.
	sysctl -q -w "net.ipv6.conf.$LAB_VETH_HOST.disable_ipv6=1" >/dev/null 2>&1 || true
	_lab_ns sysctl -q -w "net.ipv6.conf.$LAB_VETH_NS.disable_ipv6=1" >/dev/null 2>&1 || true
	ip addr replace "$LAB_HOST_ADDR/$LAB_PREFIXLEN" dev "$LAB_VETH_HOST"
	ip link set dev "$LAB_VETH_HOST" up
	ip -n "$LAB_NETNS" addr replace "$LAB_ADDR/$LAB_PREFIXLEN" dev "$LAB_VETH_NS"
	ip -n "$LAB_NETNS" link set dev "$LAB_VETH_NS" up
	ip -n "$LAB_NETNS" link set dev lo up
	_lab_net_ok || _lab_die "network namespace setup did not come up"
}

# ---------------------------------------------------------------------------
# keys and ssh configuration
# ---------------------------------------------------------------------------

# _lab_keygen TYPE FILE COMMENT: create a key pair unless a complete one exists.
# Returns 0 if a key was generated.
_lab_keygen() {
	local type=$1 file=$2 comment=$3
	if [[ -s "$file" && -s "$file.pub" ]]; then
		return 1
	fi
	rm -f "$file" "$file.pub"
	local -a bits=()
	[[ "$type" != rsa ]] || bits=(-b 3072)
	ssh-keygen -q -t "$type" "${bits[@]}" -N '' -C "$comment" -f "$file" </dev/null >/dev/null
	chmod 0600 "$file"
	return 0
}

_lab_known_hosts_text() {
	local dir=$1 prefix=$2 t
	for t in "${LAB_HOSTKEY_TYPES[@]}"; do
		local pub
		pub=$(awk '{ print $1, $2 }' "$dir/${prefix}${t}_key.pub")
		printf '[%s]:%s %s\n' "$LAB_ADDR" "$LAB_SSH_PORT" "$pub"
		printf '%s %s\n' "$LAB_ADDR" "$pub"
	done
}

# Sets _LAB_HOSTKEYS_CHANGED=1 when the sshd host keys were (re)generated.
_lab_keys() {
	_LAB_HOSTKEYS_CHANGED=0
	local t
	for t in "${LAB_HOSTKEY_TYPES[@]}"; do
		if _lab_keygen "$t" "$LAB_DIR/ssh_host_${t}_key" "rdhpf-lab host key"; then
			_LAB_HOSTKEYS_CHANGED=1
		fi
	done
	install -d -m 0700 "$LAB_WRONG_KEY_DIR"
	for t in "${LAB_HOSTKEY_TYPES[@]}"; do
		_lab_keygen "$t" "$LAB_WRONG_KEY_DIR/ssh_host_${t}_key" "rdhpf-lab WRONG host key" || true
	done
	_lab_keygen ed25519 "$LAB_KEY" "rdhpf-lab client" || true

	awk '{ print $1, $2, "rdhpf-lab-client" }' "$LAB_KEY.pub" | _lab_write "$LAB_AUTH_KEYS" 0600 || true
	_lab_known_hosts_text "$LAB_DIR" ssh_host_ | _lab_write "$LAB_KNOWN_HOSTS" 0644 || true
	_lab_known_hosts_text "$LAB_WRONG_KEY_DIR" ssh_host_ | _lab_write "$LAB_KNOWN_HOSTS_WRONG" 0644 || true
}

_lab_sshd_config_text() {
	local t
	cat <<EOF
# rdhpf lab sshd (generated by tests/lab/up; do not edit)
ListenAddress $LAB_ADDR:$LAB_SSH_PORT
AddressFamily inet
EOF
	for t in "${LAB_HOSTKEY_TYPES[@]}"; do
		echo "HostKey $LAB_DIR/ssh_host_${t}_key"
	done
	cat <<EOF
PidFile $LAB_SSHD_PID
AuthorizedKeysFile $LAB_AUTH_KEYS
# The state dir lives under /var/tmp (mode 1777), which StrictModes rejects.
StrictModes no
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
GSSAPIAuthentication no
KerberosAuthentication no
PermitRootLogin prohibit-password
UsePAM no
PermitUserEnvironment no
MaxSessions 100
MaxStartups 100:30:200
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
LogLevel VERBOSE
UseDNS no
PrintMotd no
PrintLastLog no
ClientAliveInterval 0
TCPKeepAlive yes
SetEnv HOME=$LAB_REMOTE_HOME DOCKER_HOST=unix://$LAB_DOCKER_SOCK CONTAINERS_CONF=$LAB_CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$LAB_STORAGE_CONF CONTAINERS_REGISTRIES_CONF=$LAB_REGISTRIES_CONF
Subsystem sftp internal-sftp
EOF
}

_lab_ssh_config_text() {
	cat <<EOF
# rdhpf lab ssh client config (generated by tests/lab/up)
Host $LAB_SSH_ALIAS $LAB_ADDR
  HostName $LAB_ADDR
  Port $LAB_SSH_PORT
  User $LAB_SSH_USER
  IdentityFile $LAB_KEY
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile $LAB_KNOWN_HOSTS
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  CheckHostIP no
  BatchMode yes
  PreferredAuthentications publickey
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  ControlMaster no
  ControlPath none
  ConnectTimeout 5
  LogLevel ERROR
EOF
}

# ---------------------------------------------------------------------------
# sshd
# ---------------------------------------------------------------------------

# PIDs of the lab's sshd listener (whatever namespace it ended up in).
_lab_sshd_listener_pids() {
	_lab_pids_by_args sshd "-f $LAB_SSHD_CONFIG"
}

# Listener plus every sshd session process and their children in the lab.
_lab_sshd_all_pids() {
	local -a roots
	mapfile -t roots < <({
		_lab_sshd_listener_pids
		local pid
		for pid in $(_lab_pids_in_netns); do
			[[ "$(ps -o comm= -p "$pid" 2>/dev/null)" == sshd ]] && echo "$pid"
		done
	} | sort -u)
	_lab_with_descendants "${roots[@]}"
}

_lab_sshd_listening() {
	_lab_ns ss -Hltn "sport = :$LAB_SSH_PORT" 2>/dev/null | grep -qF "$LAB_ADDR:$LAB_SSH_PORT"
}

_lab_sshd_running() {
	local -a mine
	mapfile -t mine < <(_lab_sshd_listener_pids | _lab_filter_netns yes)
	((${#mine[@]} == 1)) && _lab_sshd_listening
}

_lab_sshd_start() {
	# A listener outside the current namespace (netns recreated) is stale.
	local -a stale
	mapfile -t stale < <(_lab_sshd_listener_pids | _lab_filter_netns no)
	_lab_kill TERM 3 "${stale[@]}" || true
	if _lab_sshd_running; then
		return 0
	fi
	install -d -m 0755 /run/sshd
	install -d -m 0700 "$LAB_REMOTE_HOME"
	/usr/sbin/sshd -t -f "$LAB_SSHD_CONFIG" || _lab_die "sshd rejects $LAB_SSHD_CONFIG"
	rm -f "$LAB_SSHD_PID"
	_lab_say "starting sshd on $LAB_ADDR:$LAB_SSH_PORT"
	_lab_spawn "$LAB_SSHD_LOG" nsenter --net="$LAB_NETNS_PATH" \
		/usr/sbin/sshd -D -f "$LAB_SSHD_CONFIG" -E "$LAB_SSHD_LOG"
	lab_wait_for 10 _lab_sshd_running || _lab_die "sshd did not start; see $LAB_SSHD_LOG"
}

_lab_sshd_stop_all() {
	local -a pids
	mapfile -t pids < <(_lab_sshd_all_pids)
	_lab_kill TERM 3 "${pids[@]}" || true
	rm -f "$LAB_SSHD_PID"
}

# ---------------------------------------------------------------------------
# containerd + dockerd
# ---------------------------------------------------------------------------

_lab_containerd_config_text() {
	cat <<EOF
# rdhpf lab containerd (generated by tests/lab/up). Own instance so the lab
# dockerd never attaches to a host containerd at /run/containerd.
version = 2
root = "$LAB_CTRD_ROOT"
state = "$LAB_CTRD_STATE"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$LAB_CTRD_SOCK"

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$LAB_CTRD_ROOT/opt"
EOF
}

_lab_containerd_pids() {
	_lab_pids_by_args containerd "--config $LAB_CTRD_CONFIG"
}

_lab_containerd_running() {
	local -a mine
	mapfile -t mine < <(_lab_containerd_pids | _lab_filter_netns yes)
	((${#mine[@]} == 1)) && [[ -S "$LAB_CTRD_SOCK" ]] &&
		ctr --address "$LAB_CTRD_SOCK" version >/dev/null 2>&1
}

_lab_containerd_start() {
	local -a stale
	mapfile -t stale < <(_lab_containerd_pids | _lab_filter_netns no)
	_lab_kill TERM 5 "${stale[@]}" || true
	if _lab_containerd_running; then
		return 0
	fi
	local -a pids
	mapfile -t pids < <(_lab_containerd_pids)
	_lab_kill TERM 5 "${pids[@]}" || true
	install -d -m 0711 "$LAB_CTRD_ROOT" "$LAB_CTRD_STATE"
	rm -f "$LAB_CTRD_SOCK"
	_lab_say "starting containerd"
	_lab_spawn "$LAB_CTRD_LOG" nsenter --net="$LAB_NETNS_PATH" \
		containerd --config "$LAB_CTRD_CONFIG"
	lab_wait_for 20 _lab_containerd_running || _lab_die "containerd did not start; see $LAB_CTRD_LOG"
}

_lab_docker() {
	docker -H "unix://$LAB_DOCKER_SOCK" "$@"
}

_lab_dockerd_pids() {
	_lab_pids_by_args dockerd "unix://$LAB_DOCKER_SOCK"
}

_lab_dockerd_running() {
	local -a mine
	mapfile -t mine < <(_lab_dockerd_pids | _lab_filter_netns yes)
	((${#mine[@]} == 1)) && [[ -S "$LAB_DOCKER_SOCK" ]] &&
		_lab_docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# _lab_dockerd_launch DRIVER: start dockerd, wait until it answers.
_lab_dockerd_launch() {
	local driver=$1
	rm -f "$LAB_DOCKER_PID"
	install -d -m 0710 "$LAB_DOCKER_ROOT"
	install -d -m 0700 "$LAB_DOCKER_EXEC"
	printf '%s\n' "--- $(date -Is) starting dockerd (storage driver $driver)" >>"$LAB_DOCKERD_LOG"
	_lab_spawn "$LAB_DOCKERD_LOG" nsenter --net="$LAB_NETNS_PATH" \
		dockerd \
		--config-file "$LAB_DOCKERD_CONFIG" \
		--data-root "$LAB_DOCKER_ROOT" \
		--exec-root "$LAB_DOCKER_EXEC" \
		-H "unix://$LAB_DOCKER_SOCK" \
		--pidfile "$LAB_DOCKER_PID" \
		--containerd "$LAB_CTRD_SOCK" \
		--storage-driver "$driver" \
		--bip "$LAB_DOCKER_BIP" \
		--cgroup-parent "$LAB_DOCKER_CGROUP_PARENT" \
		--iptables=true \
		--ip-forward=true \
		--userland-proxy=true \
		--log-level info
	local deadline
	deadline=$(($(_lab_now_us) + 40 * 1000000))
	while (($(_lab_now_us) < deadline)); do
		if _lab_dockerd_running; then
			return 0
		fi
		# Gave up already (e.g. storage driver unsupported)?
		if [[ -z "$(_lab_dockerd_pids)" ]]; then
			sleep 0.2
			[[ -z "$(_lab_dockerd_pids)" ]] && return 1
		fi
		sleep 0.1
	done
	return 1
}

# Sets _LAB_DOCKERD_STARTED=1 when dockerd was (re)started.
_lab_dockerd_start() {
	_lab_dockerd_ensure
	_lab_firewall
}

_lab_dockerd_ensure() {
	_LAB_DOCKERD_STARTED=0
	local -a stale
	mapfile -t stale < <(_lab_dockerd_pids | _lab_filter_netns no)
	_lab_kill TERM 15 "${stale[@]}" || true
	_lab_containerd_start
	if _lab_dockerd_running; then
		return 0
	fi
	local -a pids
	mapfile -t pids < <(_lab_dockerd_pids)
	_lab_kill TERM 15 "${pids[@]}" || true
	[[ -f "$LAB_DOCKERD_CONFIG" ]] || echo '{}' >"$LAB_DOCKERD_CONFIG"
	_LAB_DOCKERD_STARTED=1
	rm -f "$LAB_MARK_DOCKER"
	local driver
	driver=$(cat "$LAB_DOCKER_DRIVER_FILE" 2>/dev/null || true)
	if [[ -n "$driver" ]]; then
		_lab_say "starting dockerd (storage driver $driver)"
		_lab_dockerd_launch "$driver" || _lab_die "dockerd did not start; see $LAB_DOCKERD_LOG"
		return 0
	fi
	_lab_say "starting dockerd (trying storage driver overlay2)"
	if _lab_dockerd_launch overlay2; then
		echo overlay2 >"$LAB_DOCKER_DRIVER_FILE"
		return 0
	fi
	_lab_say "overlay2 failed, falling back to vfs (see $LAB_DOCKERD_LOG)"
	mapfile -t pids < <(_lab_dockerd_pids)
	_lab_kill TERM 10 "${pids[@]}" || true
	if _lab_dockerd_launch vfs; then
		echo vfs >"$LAB_DOCKER_DRIVER_FILE"
		return 0
	fi
	_lab_die "dockerd did not start with overlay2 or vfs; see $LAB_DOCKERD_LOG"
}

# Docker sets the namespace's FORWARD policy to DROP; netavark (1.4) only
# accepts established traffic towards its networks, so connections DNATed to
# podman containers from the veth would be dropped. Accept DNATed traffic in
# DOCKER-USER (kept by dockerd across restarts). Idempotent.
_lab_firewall() {
	local -a rule=(DOCKER-USER -m conntrack --ctstate DNAT -m comment --comment rdhpf-lab -j ACCEPT)
	if ! _lab_ns iptables -w -C "${rule[@]}" 2>/dev/null; then
		_lab_ns iptables -w -I "${rule[@]:0:1}" 1 "${rule[@]:1}"
	fi
}

# _lab_dockerd_stop SIGNAL: stop dockerd only (containerd and shims stay).
_lab_dockerd_stop() {
	local sig=${1:-TERM}
	local -a pids
	mapfile -t pids < <(_lab_dockerd_pids)
	if ((${#pids[@]})); then
		# docker-proxy children die with dockerd (parent-death signal);
		# include them so nothing lingers.
		mapfile -t pids < <(_lab_with_descendants "${pids[@]}")
		_lab_kill "$sig" 20 "${pids[@]}" || true
	fi
}

# ---------------------------------------------------------------------------
# podman
# ---------------------------------------------------------------------------

# The podman command line that addresses the lab store from the host; ssh
# sessions get the same CONTAINERS_* variables through sshd's SetEnv.
LAB_PODMAN_CMD=(
	nsenter "--net=$LAB_NETNS_PATH" env
	"CONTAINERS_CONF=$LAB_CONTAINERS_CONF"
	"CONTAINERS_STORAGE_CONF=$LAB_STORAGE_CONF"
	"CONTAINERS_REGISTRIES_CONF=$LAB_REGISTRIES_CONF"
	podman
)

_lab_podman() {
	"${LAB_PODMAN_CMD[@]}" "$@"
}

_lab_containers_conf_text() {
	cat <<EOF
# rdhpf lab podman engine config (generated by tests/lab/up). Used via
# CONTAINERS_CONF by ssh sessions and by \$RDHPF_LAB_PODMAN.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "$LAB_PODMAN_NETWORKS"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$LAB_PODMAN_EVENTS_LOG"
events_logfile_max_size = "0"
runtime = "runc"
tmp_dir = "$LAB_PODMAN_TMP"
volume_path = "$LAB_PODMAN_VOLUMES"
EOF
}

_lab_storage_conf_text() {
	local driver=$1
	cat <<EOF
# rdhpf lab podman storage (generated by tests/lab/up)
[storage]
driver = "$driver"
graphroot = "$LAB_PODMAN_GRAPHROOT"
runroot = "$LAB_PODMAN_RUNROOT"
EOF
	if [[ "$driver" == overlay ]]; then
		cat <<EOF

[storage.options.overlay]
mountopt = "nodev"
EOF
	fi
}

_lab_registries_conf_text() {
	cat <<EOF
# rdhpf lab: no registry is reachable; never try one for short names.
unqualified-search-registries = []
short-name-mode = "disabled"
EOF
}

_lab_podman_configs() {
	install -d -m 0700 "$LAB_PODMAN_DIR" "$LAB_PODMAN_GRAPHROOT" "$LAB_PODMAN_NETWORKS" \
		"$LAB_PODMAN_VOLUMES" "$LAB_PODMAN_RUNROOT" "$LAB_PODMAN_TMP"
	_lab_containers_conf_text | _lab_write "$LAB_CONTAINERS_CONF" 0644 || true
	_lab_registries_conf_text | _lab_write "$LAB_REGISTRIES_CONF" 0644 || true
	local driver
	driver=$(cat "$LAB_PODMAN_DRIVER_FILE" 2>/dev/null || true)
	if [[ -n "$driver" ]]; then
		_lab_storage_conf_text "$driver" | _lab_write "$LAB_STORAGE_CONF" 0644 || true
		return 0
	fi
	_lab_storage_conf_text overlay | _lab_write "$LAB_STORAGE_CONF" 0644 || true
	if _lab_podman info --format '{{.Store.GraphDriverName}}' >/dev/null 2>"$LAB_RUN/podman-info.err"; then
		echo overlay >"$LAB_PODMAN_DRIVER_FILE"
		return 0
	fi
	if grep -q 'could not find "' "$LAB_RUN/podman-info.err"; then
		_lab_die "$(_lab_podman_explain "$LAB_RUN/podman-info.err")"
	fi
	_lab_say "podman overlay storage failed ($(head -c 300 "$LAB_RUN/podman-info.err")); using vfs"
	_lab_storage_conf_text vfs | _lab_write "$LAB_STORAGE_CONF" 0644 || true
	_lab_podman info >/dev/null 2>"$LAB_RUN/podman-info.err" ||
		_lab_die "podman does not work with vfs storage either: $(_lab_podman_explain "$LAB_RUN/podman-info.err")"
	echo vfs >"$LAB_PODMAN_DRIVER_FILE"
}

# Kill podman's conmon processes for the lab store (and their containers).
_lab_podman_kill_leftovers() {
	local -a pids
	mapfile -t pids < <(_lab_pids_by_args conmon "$LAB_DIR/")
	if ((${#pids[@]})); then
		mapfile -t pids < <(_lab_with_descendants "${pids[@]}")
		_lab_kill TERM 5 "${pids[@]}" || true
	fi
}

# ---------------------------------------------------------------------------
# image
# ---------------------------------------------------------------------------

_lab_image_tar() {
	[[ -s "$LAB_IMAGE_TAR" ]] && return 0
	_lab_say "building busybox rootfs tar"
	local root="$LAB_IMAGE_DIR/rootfs"
	rm -rf "$root"
	install -d -m 0755 "$root/bin" "$root/etc" "$root/www" "$root/usr" "$root/proc" \
		"$root/sys" "$root/dev" "$root/root" "$root/var"
	install -d -m 1777 "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	local applet
	for applet in $(/bin/busybox --list); do
		[[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
	done
	ln -s bin "$root/sbin"
	ln -s ../bin "$root/usr/bin"
	ln -s ../bin "$root/usr/sbin"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	printf 'rdhpf-lab ok\n' >"$root/www/index.html"
	# Default command: serve /www on port 80 and exit promptly on SIGTERM
	# (a bare `httpd -f` as PID 1 ignores SIGTERM, so `docker stop` waits 10 s).
	cat >"$root/bin/lab-httpd" <<'EOF'
#!/bin/sh
# lab-httpd [PORT]: serve /www on PORT (default 80); exit 0 on SIGTERM/SIGINT.
trap 'exit 0' TERM INT
httpd -f -p "${1:-80}" -h /www &
wait
EOF
	chmod 0755 "$root/bin/lab-httpd"
	tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 \
		-C "$root" -cf "$LAB_IMAGE_TAR.tmp" .
	mv -f "$LAB_IMAGE_TAR.tmp" "$LAB_IMAGE_TAR"
	rm -rf "$root"
}

_LAB_IMAGE_CHANGES=(
	--change 'CMD ["/bin/lab-httpd", "80"]'
	--change 'EXPOSE 80/tcp'
	--change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin'
)

_lab_docker_image() {
	if _lab_docker image inspect "$LAB_IMAGE" >/dev/null 2>&1; then
		return 0
	fi
	_lab_say "importing $LAB_IMAGE into the lab docker"
	_lab_docker import "${_LAB_IMAGE_CHANGES[@]}" "$LAB_IMAGE_TAR" "$LAB_IMAGE" >/dev/null
	rm -f "$LAB_MARK_DOCKER"
}

_lab_podman_image() {
	if _lab_podman image exists "$LAB_IMAGE" 2>/dev/null; then
		return 0
	fi
	_lab_say "importing $LAB_IMAGE into the lab podman"
	_lab_podman import --quiet "${_LAB_IMAGE_CHANGES[@]}" "$LAB_IMAGE_TAR" "$LAB_IMAGE" >/dev/null
	rm -f "$LAB_MARK_PODMAN"
}

# ---------------------------------------------------------------------------
# one-time proofs that containers publish ports (redone after restarts)
# ---------------------------------------------------------------------------

_lab_verify_docker() {
	[[ -e "$LAB_MARK_DOCKER" ]] && return 0
	local name=rdhpf-lab-verify-docker port=$LAB_VERIFY_DOCKER_PORT ok=1
	_lab_say "verifying a docker container publishes :$port"
	_lab_docker rm -f "$name" >/dev/null 2>&1 || true
	_lab_docker run -d --name "$name" -p "$port:80" "$LAB_IMAGE" httpd -f -p 80 -h /www >/dev/null
	if ! lab_wait_for 15 lab_ns_http_ok 127.0.0.1 "$port"; then
		_lab_say "docker: 127.0.0.1:$port inside the namespace does not serve"
		ok=0
	elif ! lab_wait_for 5 lab_http_ok "$LAB_ADDR" "$port"; then
		_lab_say "docker: $LAB_ADDR:$port over the veth does not serve"
		ok=0
	fi
	_lab_docker rm -f "$name" >/dev/null
	((ok)) || _lab_die "docker port publishing does not work; see $LAB_DOCKERD_LOG"
	: >"$LAB_MARK_DOCKER"
}

_lab_verify_podman() {
	[[ -e "$LAB_MARK_PODMAN" ]] && return 0
	local name=rdhpf-lab-verify-podman port=$LAB_VERIFY_PODMAN_PORT ok=1 since ev evpid
	_lab_say "verifying a podman container publishes :$port and emits events"
	_lab_podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
	ev="$LAB_RUN/podman-events.verify"
	since=$(date +%s)
	# --since makes the stream include events written before it attached.
	# Not holding the lab's lock (fd 9), and stopped on any way out: a
	# leftover reader once kept the lock and made `down` wait 300 s.
	"${LAB_PODMAN_CMD[@]}" events --format json --since "$((since - 1))" --filter "container=$name" \
		--filter event=start >"$ev" 2>&1 9>&- &
	evpid=$!
	_LAB_VERIFY_CLEANUP="$evpid $name"
	trap _lab_verify_podman_cleanup EXIT
	if ! _lab_podman run -d --name "$name" -p "$port:80" "$LAB_IMAGE" httpd -f -p 80 -h /www \
		>/dev/null 2>"$LAB_RUN/podman-run.err"; then
		_lab_die "podman run failed: $(_lab_podman_explain "$LAB_RUN/podman-run.err")"
	fi
	if ! lab_wait_for 15 lab_ns_http_ok 127.0.0.1 "$port"; then
		_lab_say "podman: 127.0.0.1:$port inside the namespace does not serve"
		ok=0
	elif ! lab_wait_for 5 lab_http_ok "$LAB_ADDR" "$port"; then
		_lab_say "podman: $LAB_ADDR:$port over the veth does not serve"
		ok=0
	elif ! lab_wait_for 10 grep -q '"Status":"start"' "$ev"; then
		_lab_say "podman: 'podman events --format json' did not stream the start event: $(head -c 300 "$ev")"
		ok=0
	fi
	kill "$evpid" 2>/dev/null || true
	wait "$evpid" 2>/dev/null || true
	_lab_podman rm -f -t 0 "$name" >/dev/null
	trap - EXIT
	((ok)) || _lab_die "podman does not work in the lab"
	rm -f "$ev"
	: >"$LAB_MARK_PODMAN"
}

_lab_verify_podman_cleanup() {
	local pid=${_LAB_VERIFY_CLEANUP%% *} name=${_LAB_VERIFY_CLEANUP#* }
	kill "$pid" 2>/dev/null || true
	_lab_podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------------------
# up / down / env
# ---------------------------------------------------------------------------

_lab_up() {
	_lab_check_tools
	_lab_lock
	install -d -m 0700 "$LAB_DIR" "$LAB_RUN" "$LAB_IMAGE_DIR"

	if ! _lab_net_ok; then
		# A new namespace has no bridges or NAT rules yet: prove both engines again.
		rm -f "$LAB_MARK_DOCKER" "$LAB_MARK_PODMAN"
		_lab_net_up
	fi

	_lab_keys
	local sshd_changed=0
	if _lab_sshd_config_text | _lab_write "$LAB_SSHD_CONFIG" 0600; then
		sshd_changed=1
	fi
	_lab_ssh_config_text | _lab_write "$LAB_SSH_CONFIG" 0644 || true
	if ((sshd_changed || _LAB_HOSTKEYS_CHANGED)) && [[ -n "$(_lab_sshd_listener_pids)" ]]; then
		_lab_say "sshd configuration changed: restarting sshd"
		_lab_sshd_stop_all
	fi
	_lab_sshd_start

	local ctrd_changed=0
	if _lab_containerd_config_text | _lab_write "$LAB_CTRD_CONFIG" 0644; then
		ctrd_changed=1
	fi
	if ((ctrd_changed)) && [[ -n "$(_lab_containerd_pids)" ]]; then
		_lab_say "containerd configuration changed: restarting docker engine"
		_lab_dockerd_stop TERM
		local -a pids
		mapfile -t pids < <(_lab_containerd_pids)
		_lab_kill TERM 10 "${pids[@]}" || true
	fi
	_lab_dockerd_start

	_lab_image_tar
	_lab_docker_image
	_lab_verify_docker

	# podman: in a subshell, so that a failure (its _lab_die) comes back here
	# with its reason instead of ending `up`, and its EXIT trap stops whatever
	# it started in the background.
	rm -f "$LAB_PODMAN_UNAVAILABLE"
	local reason log="$LAB_RUN/podman-up.log" rc=0
	(_lab_podman_up) 2>"$log" || rc=$?
	[[ "${LAB_QUIET:-0}" == 1 ]] || grep -v '^lab: ERROR: ' "$log" >&2 || true
	if ((rc != 0)); then
		reason=$(sed -n 's/^lab: ERROR: //p' "$log" | tail -n 1)
		printf '%s\n' "${reason:-podman failed}" >"$LAB_PODMAN_UNAVAILABLE"
		if [[ "${RDHPF_LAB_PODMAN_OPTIONAL:-0}" == 1 ]]; then
			_lab_say "podman is unavailable: $reason (going on without it)"
		else
			_lab_die "podman: $reason"
		fi
	fi
}

_lab_podman_up() {
	local missing
	missing=$(_lab_podman_missing)
	[[ -z "$missing" ]] || _lab_die "missing programs: $(_lab_missing_hint "$missing")"
	_lab_podman_configs
	_lab_podman_image
	_lab_verify_podman
}

# podman names a helper it could not find ('could not find "netavark" in one
# of [...]'): say which Debian package has it.
_lab_podman_explain() {
	local err=$1 helper pkg
	helper=$(sed -n 's/.*could not find "\([^"]*\)".*/\1/p' "$err" | head -n 1)
	if [[ -n "$helper" ]]; then
		pkg=$(_lab_package_of "$helper")
		printf 'podman needs %s, which is not installed: apt-get install %s (or run scripts/deps)' \
			"$helper" "${pkg:-the package that has $helper}"
	else
		head -c 300 "$err"
	fi
}

_lab_umount_under() {
	local dir=$1 m
	local -a mounts
	# mountinfo field 5 is the mount point (octal escapes for blanks).
	mapfile -t mounts < <(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
		awk '{ print length($0), $0 }' | sort -rn | cut -d' ' -f2-)
	for m in "${mounts[@]}"; do
		m=$(printf '%b' "$m")
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || _lab_say "warning: could not unmount $m"
	done
}

_lab_down() {
	local purge=$1
	# Nothing to lock (and no state to keep) once the state dir is gone.
	if [[ -d "$LAB_DIR" ]]; then
		_lab_lock
	fi
	local -a pids
	if [[ -n "$(_lab_netns_id)" ]]; then
		# Remove the lab's containers while their networks still exist.
		if [[ -f "$LAB_CONTAINERS_CONF" && -f "$LAB_STORAGE_CONF" ]]; then
			if [[ -n "$(timeout 30 "${LAB_PODMAN_CMD[@]}" pod ps -q 2>/dev/null || true)" ]]; then
				timeout 60 "${LAB_PODMAN_CMD[@]}" pod rm -af -t 0 >/dev/null 2>&1 || true
			fi
			if [[ -n "$(timeout 30 "${LAB_PODMAN_CMD[@]}" ps -aq 2>/dev/null || true)" ]]; then
				_lab_say "removing podman containers"
				timeout 60 "${LAB_PODMAN_CMD[@]}" rm -af -t 0 >/dev/null 2>&1 || _lab_say "warning: podman rm failed"
			fi
		fi
		if _lab_dockerd_running; then
			mapfile -t pids < <(_lab_docker ps -aq 2>/dev/null || true)
			if ((${#pids[@]})); then
				_lab_say "removing docker containers"
				timeout 60 docker -H "unix://$LAB_DOCKER_SOCK" rm -f "${pids[@]}" >/dev/null 2>&1 ||
					_lab_say "warning: docker rm failed"
			fi
		fi
	fi

	_lab_say "stopping sshd"
	_lab_sshd_stop_all
	_lab_say "stopping dockerd and containerd"
	_lab_dockerd_stop TERM
	mapfile -t pids < <(_lab_containerd_pids)
	_lab_kill TERM 10 "${pids[@]}" || true
	# Shims (and the containers under them) of the lab containerd.
	mapfile -t pids < <(_lab_pids_by_args containerd-shim "$LAB_CTRD_SOCK")
	if ((${#pids[@]})); then
		mapfile -t pids < <(_lab_with_descendants "${pids[@]}")
		_lab_kill KILL 5 "${pids[@]}" || true
	fi
	_lab_podman_kill_leftovers
	# Anything else still in the namespace, and anything in the lab's docker cgroup.
	mapfile -t pids < <({
		_lab_pids_in_netns
		cat /sys/fs/cgroup/pids/"$LAB_DOCKER_CGROUP_PARENT"/*/cgroup.procs 2>/dev/null || true
	} | sort -u)
	if ((${#pids[@]})); then
		mapfile -t pids < <(_lab_with_descendants "${pids[@]}")
		_lab_say "killing leftover processes: ${pids[*]}"
		_lab_kill TERM 3 "${pids[@]}" || true
	fi
	local cg
	for cg in /sys/fs/cgroup/*/"$LAB_DOCKER_CGROUP_PARENT"; do
		[[ -d "$cg" ]] || continue
		find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done

	_lab_umount_under "$LAB_DIR"

	if ip netns list 2>/dev/null | grep -qE "^$LAB_NETNS( |\$)"; then
		_lab_say "deleting network namespace $LAB_NETNS"
		ip netns del "$LAB_NETNS" || _lab_say "warning: ip netns del failed"
	fi
	ip link del "$LAB_VETH_HOST" 2>/dev/null || true

	rm -rf --one-file-system "$LAB_RUN"
	rm -f "$LAB_DOCKER_SOCK" "$LAB_DOCKER_PID" "$LAB_SSHD_PID"

	if [[ "$purge" == 1 ]]; then
		_lab_say "purging $LAB_DIR"
		_lab_umount_under "$LAB_DIR"
		rm -rf --one-file-system "$LAB_DIR"
	fi

	# Prove nothing is left behind.
	local left
	left=$(
		{
			_lab_sshd_listener_pids
			_lab_containerd_pids
			_lab_dockerd_pids
			_lab_pids_by_args containerd-shim "$LAB_CTRD_SOCK"
			_lab_pids_by_args conmon "$LAB_DIR/"
		} | sort -u | tr '\n' ' '
	)
	[[ -z "${left// /}" ]] || _lab_die "processes survived: $left"
}

_lab_sq() {
	# Single-quote a string for the shell.
	printf "'%s'" "${1//\'/\'\\\'\'}"
}

_lab_print_env() {
	local podman_cmd="${LAB_PODMAN_CMD[*]}"
	local -a kv=(
		RDHPF_LAB_DIR "$LAB_DIR"
		RDHPF_LAB_URL "ssh://$LAB_SSH_USER@$LAB_ADDR:$LAB_SSH_PORT"
		RDHPF_LAB_USER "$LAB_SSH_USER"
		RDHPF_LAB_ADDR "$LAB_ADDR"
		RDHPF_LAB_PORT "$LAB_SSH_PORT"
		RDHPF_LAB_HOST_ADDR "$LAB_HOST_ADDR"
		RDHPF_LAB_NETNS "$LAB_NETNS"
		RDHPF_LAB_NETNS_PATH "$LAB_NETNS_PATH"
		RDHPF_LAB_NS_EXEC "nsenter --net=$LAB_NETNS_PATH"
		RDHPF_LAB_VETH "$LAB_VETH_NS"
		RDHPF_LAB_VETH_HOST "$LAB_VETH_HOST"
		RDHPF_LAB_KEY "$LAB_KEY"
		RDHPF_LAB_KNOWN_HOSTS "$LAB_KNOWN_HOSTS"
		RDHPF_LAB_KNOWN_HOSTS_WRONG "$LAB_KNOWN_HOSTS_WRONG"
		RDHPF_LAB_SSH_CONFIG "$LAB_SSH_CONFIG"
		RDHPF_LAB_SSH_HOST "$LAB_SSH_ALIAS"
		RDHPF_LAB_SSHD_CONFIG "$LAB_SSHD_CONFIG"
		RDHPF_LAB_SSHD_LOG "$LAB_SSHD_LOG"
		RDHPF_LAB_DOCKER_SOCK "$LAB_DOCKER_SOCK"
		RDHPF_LAB_DOCKER_HOST "unix://$LAB_DOCKER_SOCK"
		RDHPF_LAB_DOCKER "docker -H unix://$LAB_DOCKER_SOCK"
		RDHPF_LAB_DOCKERD_LOG "$LAB_DOCKERD_LOG"
		RDHPF_LAB_PODMAN "$podman_cmd"
		RDHPF_LAB_PODMAN_CONF "$LAB_CONTAINERS_CONF"
		RDHPF_LAB_PODMAN_STORAGE_CONF "$LAB_STORAGE_CONF"
		RDHPF_LAB_PODMAN_REGISTRIES_CONF "$LAB_REGISTRIES_CONF"
		RDHPF_LAB_PODMAN_EVENTS_LOG "$LAB_PODMAN_EVENTS_LOG"
		RDHPF_LAB_IMAGE "$LAB_IMAGE"
		RDHPF_LAB_PODMAN_UNAVAILABLE "$(cat "$LAB_PODMAN_UNAVAILABLE" 2>/dev/null || true)"
	)
	local i
	for ((i = 0; i < ${#kv[@]}; i += 2)); do
		printf 'export %s=%s\n' "${kv[i]}" "$(_lab_sq "${kv[i + 1]}")"
	done
}

# ---------------------------------------------------------------------------
# public API for tests
# ---------------------------------------------------------------------------

# lab_require: skip (77) or, in CI, fail (1) unless root; bring the lab up
# (idempotent, quiet) and export the RDHPF_LAB_* variables.
lab_require() {
	if [[ "$(id -u)" != 0 ]]; then
		if [[ "${CI:-}" == true ]]; then
			echo "FAIL: lab test needs root in CI"
			exit 1
		fi
		echo "SKIP: lab tests need root (run as root)"
		exit 77
	fi
	local out
	out=$(mktemp)
	if ! LAB_QUIET=0 "$LAB_SCRIPT_DIR/up" >/dev/null 2>"$out"; then
		cat "$out" >&2
		rm -f "$out"
		echo "FAIL: tests/lab/up failed"
		exit 1
	fi
	rm -f "$out"
	eval "$("$LAB_SCRIPT_DIR/env")"
}

# lab_ns CMD...: run CMD inside the lab's network namespace.
lab_ns() {
	_lab_ns "$@"
}

# lab_ssh ARGS...: ssh to the lab with the lab's client config.
lab_ssh() {
	ssh -F "$LAB_SSH_CONFIG" "$LAB_SSH_ALIAS" "$@"
}

# lab_docker ARGS... / lab_podman ARGS...: control the lab engines locally.
lab_docker() {
	_lab_docker "$@"
}

lab_podman() {
	_lab_podman "$@"
}

# lab_sshd_accepted_count: number of "Accepted publickey" lines so far.
lab_sshd_accepted_count() {
	local n
	n=$(grep -c 'Accepted publickey' "$LAB_SSHD_LOG" 2>/dev/null || true)
	echo "${n:-0}"
}

# lab_sshd_stop: outage — kill the listener and every session (and their
# children); established connections drop.
lab_sshd_stop() {
	_lab_sshd_stop_all
}

# lab_sshd_start: start sshd again and wait until it listens.
lab_sshd_start() {
	_lab_sshd_start
}

lab_sshd_restart() {
	lab_sshd_stop
	lab_sshd_start
}

# lab_dockerd_stop [--graceful]: outage of the docker engine. Default is
# SIGKILL (a crash: containers keep running under containerd until dockerd
# comes back, which then stops them and restarts those with a restart
# policy); --graceful sends SIGTERM (dockerd stops its containers first).
lab_dockerd_stop() {
	if [[ "${1:-}" == --graceful ]]; then
		_lab_dockerd_stop TERM
	else
		_lab_dockerd_stop KILL
	fi
}

# lab_dockerd_start: start dockerd (and containerd if needed), wait until ready.
lab_dockerd_start() {
	_lab_dockerd_start
}

lab_dockerd_restart() {
	lab_dockerd_stop "$@"
	lab_dockerd_start
}

# lab_blackhole_on/off: silently drop everything arriving on the lab's veth.
lab_blackhole_on() {
	if ! _lab_ns iptables -w -C INPUT -i "$LAB_VETH_NS" -j DROP 2>/dev/null; then
		_lab_ns iptables -w -I INPUT 1 -i "$LAB_VETH_NS" -j DROP
	fi
}

lab_blackhole_off() {
	local i
	for ((i = 0; i < 10; i++)); do
		_lab_ns iptables -w -D INPUT -i "$LAB_VETH_NS" -j DROP 2>/dev/null || return 0
	done
}

# lab_wait_for TIMEOUT_S CMD [ARGS...]: run CMD every 0.1 s until it succeeds;
# give up after TIMEOUT_S seconds (fractions allowed) or that many tries.
# CMD itself should be quick (wrap slow commands in `timeout`).
lab_wait_for() {
	local timeout=$1
	shift
	local timeout_us max i deadline
	timeout_us=$(awk -v t="$timeout" 'BEGIN { printf "%d", t * 1000000 }')
	max=$((timeout_us / 100000 + 1))
	deadline=$(($(_lab_now_us) + timeout_us))
	for ((i = 0; i < max; i++)); do
		if "$@"; then
			return 0
		fi
		(($(_lab_now_us) < deadline)) || break
		sleep 0.1
	done
	printf 'lab_wait_for: gave up after %ss: %s\n' "$timeout" "$*" >&2
	return 1
}

# lab_http_ok HOST PORT [PATH]: true if http://HOST:PORT/PATH serves (2xx).
lab_http_ok() {
	curl -fs -o /dev/null --noproxy '*' --connect-timeout 1 --max-time 2 \
		"http://$1:$2/${3:-}"
}

# lab_ns_http_ok HOST PORT [PATH]: the same, from inside the lab namespace.
lab_ns_http_ok() {
	_lab_ns curl -fs -o /dev/null --noproxy '*' --connect-timeout 1 --max-time 2 \
		"http://$1:$2/${3:-}"
}
