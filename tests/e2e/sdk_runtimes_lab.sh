#!/usr/bin/env bash
# The SDK's two runtimes, the real binary against the lab, over one transport:
#   sdk_runtimes_lab.sh openssh|libssh2|libssh
# listening: a listener started inside the lab namespace becomes
# localhost:P (the time it took is printed next to poll_interval + 100 ms;
# no timing is asserted), one outside `include` does not, a stopped one
# goes.  static: a fixed port forwards to a listener in the namespace,
# whether it was there first or came later.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../lab/lib.sh"
lab_require

transport=${1:?transport}
case "$transport" in
openssh) base=25000 ;;
libssh2) base=25100 ;;
libssh) base=25200 ;;
*) echo "unknown transport $transport"; exit 2 ;;
esac
[ -f "$RDHPF_PLUGIN_DIR/transport-$transport.so" ] || { echo "SKIP: transport $transport not built"; exit 77; }
poll_ms=500

mkdir -p "$T/www"
echo sdk-runtime >"$T/www/index.html"
LISTENERS=()
# listen NAME ADDR:PORT: busybox httpd inside the lab namespace, its pid in
# L_NAME.  exec'd (so the pid is busybox's) without our fds above 2 (the
# lab lock must not outlive this script in a listener).
listen() {
	(
		for fd in "/proc/$BASHPID/fd/"*; do
			fd=${fd##*/}
			if ((fd > 2)); then eval "exec $fd>&-"; fi
		done
		exec nsenter --net="$LAB_NETNS_PATH" busybox httpd -f -p "$2" -h "$T/www" \
			</dev/null >/dev/null 2>&1
	) &
	eval "L_$1=$!"
	LISTENERS+=($!)
	lab_wait_for 5 lab_ns_http_ok "${2%:*}" "${2##*:}" >/dev/null 2>&1 ||
		{ echo "listener $2 did not come up in the namespace"; exit 1; }
}
unlisten() { # unlisten NAME
	local v="L_$1"
	kill "${!v}" 2>/dev/null || true
	wait "${!v}" 2>/dev/null || true
}
trap 'for p in "${LISTENERS[@]}"; do kill "$p" 2>/dev/null || true; done; cleanup' EXIT
serves() { lab_http_ok 127.0.0.1 "$1"; }
refuses() { ! lab_http_ok 127.0.0.1 "$1"; }
# The forward itself is gone: nothing listens on the local port any more.
unbound() { ! grep -q . <<<"$(ss -ltnH "sport = :$1")"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

config() { # config RUNTIME KEY=VALUE...
	cat >"$T/config.ini" <<C
[host "lab"]
url = $RDHPF_LAB_URL
identity_file = $RDHPF_LAB_KEY
known_hosts = $RDHPF_LAB_KNOWN_HOSTS
transport = $transport
runtime = $1
poll_interval = ${poll_ms}ms
backoff_initial = 100ms
backoff_max = 500ms
health_interval = 1s
connect_timeout = 5s
C
	shift
	for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}" >>"$T/config.ini"; done
}

# ---- listening ----
p_lo=$((base + 1)) p_any=$((base + 2)) p_out=$((base + 50))
config listening "include=$base-$((base + 9))"
"$RDHPF_BIN" check-config "$T/config.ini" >/dev/null
start_daemon --config "$T/config.ini"
steady() { grep -q '"state": "steady"' <<<"$("$RDHPF_BIN" status --runtime-dir "$T/run" --format json)"; }
check "host steady (listening)" wait_for 10000 steady

t0=$(date +%s%N)
listen lo "127.0.0.1:$p_lo"
if wait_for 10000 serves "$p_lo"; then
	ok "listener on the remote's 127.0.0.1:$p_lo: localhost:$p_lo serves"
	echo "# serving $(ms_since "$t0") ms after the listener came up (poll_interval + 100 ms = $((poll_ms + 100)) ms)"
else
	not_ok "listener on the remote's 127.0.0.1:$p_lo: localhost:$p_lo serves"
fi
t0=$(date +%s%N)
listen any "0.0.0.0:$p_any"
if wait_for 10000 serves "$p_any"; then
	ok "listener on 0.0.0.0:$p_any: forwarded (to the remote's 127.0.0.1)"
	echo "# serving $(ms_since "$t0") ms after the listener came up"
else
	not_ok "listener on 0.0.0.0:$p_any: forwarded (to the remote's 127.0.0.1)"
fi
listen out "127.0.0.1:$p_out"
sleep $((3 * poll_ms / 1000 + 1))
check "a listener outside include ($p_out): not forwarded" refuses "$p_out"
unlisten lo
t0=$(date +%s%N)
check "listener stopped: localhost:$p_lo refuses" wait_for 10000 refuses "$p_lo"
check "listener stopped: the forward goes (localhost:$p_lo unbound)" wait_for 10000 unbound "$p_lo"
echo "# forward gone $(ms_since "$t0") ms after the listener stopped"
check "the other listener still served" serves "$p_any"
unlisten any
unlisten out
check "daemon exits 0 on SIGTERM (listening)" stop_daemon

# ---- static ----
p_st=$((base + 20)) p_late=$((base + 21))
listen st "127.0.0.1:$p_st"
config static "ports=$p_st, $p_late" "name=lab-static"
"$RDHPF_BIN" check-config "$T/config.ini" >/dev/null
start_daemon --config "$T/config.ini"
check "static: localhost:$p_st forwards to the namespace's listener" wait_for 10000 serves "$p_st"
check "static: the port with no listener yet is refused" refuses "$p_late"
listen late "127.0.0.1:$p_late"
check "static: a listener started later is reached through the same forward" wait_for 5000 serves "$p_late"
check "daemon exits 0 on SIGTERM (static)" stop_daemon
unlisten st
unlisten late
finish
