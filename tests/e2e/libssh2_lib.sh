# shellcheck shell=bash
# Sourced by tests/e2e/libssh2_*.sh: an in-process transport (libssh2 by
# default; LS2_TRANSPORT=libssh for transport-libssh) against the lab,
# driven by tdriver.  libssh2_lab.sh is libssh2's own; integrity, conc,
# outage and blackhole run for both.  Needs root (the lab); skips with 77 otherwise (a
# failure in CI, as lab_require decides).
#
# Environment (meson passes them; defaults fit a build in build/):
#   RDHPF_TDRIVER     tdriver binary
#   RDHPF_PLUGIN_DIR  directory holding transport-$LS2_TRANSPORT.so
#   LS2_TRANSPORT     libssh2 (default) or libssh
#   RDHPF_CONF_BIN    conformance-transport binary (conformance test only)
set -euo pipefail

LS2_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LS2_ROOT="$(cd "$LS2_HERE/../.." && pwd)"
# shellcheck source=tests/lab/lib.sh
source "$LS2_ROOT/tests/lab/lib.sh"

: "${RDHPF_TDRIVER:=$LS2_ROOT/build/tests/e2e/tdriver}"
: "${RDHPF_PLUGIN_DIR:=$LS2_ROOT/build/plugins}"
: "${LS2_TRANSPORT:=libssh2}"
if [[ ! -x "$RDHPF_TDRIVER" || ! -f "$RDHPF_PLUGIN_DIR/transport-$LS2_TRANSPORT.so" ]]; then
	echo "SKIP: tdriver or transport-$LS2_TRANSPORT.so not built ($RDHPF_TDRIVER, $RDHPF_PLUGIN_DIR)"
	exit 77
fi

lab_require

LS2_T=$(mktemp -d /tmp/rdhpf-ls2.XXXXXX)
chmod 700 "$LS2_T"
LS2_PIDS=()
LS2_NS_PIDS=()
ls2_passed=0
ls2_failed=0

ls2_cleanup() {
	local p
	for p in "${LS2_PIDS[@]}" "${LS2_NS_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${LS2_PIDS[@]}" "${LS2_NS_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if declare -F ls2_extra_cleanup >/dev/null; then
		ls2_extra_cleanup || true
	fi
	rm -rf "$LS2_T"
}
trap ls2_cleanup EXIT

ok() {
	echo "ok   - $*"
	ls2_passed=$((ls2_passed + 1))
}
not_ok() {
	echo "FAIL - $*"
	ls2_failed=$((ls2_failed + 1))
}
check() { # check DESCRIPTION CMD...
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
ls2_finish() {
	echo "$ls2_passed passed, $ls2_failed failed"
	if ((ls2_failed > 0)); then
		local f
		for f in "$LS2_T"/*.out; do
			[[ -f "$f" ]] || continue
			echo "--- $f (tail)"
			tail -n 30 "$f"
		done
		exit 1
	fi
	exit 0
}

now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((10#$t / 1000))
}

# A free TCP port on 127.0.0.1 (on this side of the lab).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A free TCP port inside the lab namespace.
free_ns_port() {
	lab_ns python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ls2_echo_py: write $LS2_T/echo.py, an echo server for the lab
# (python3 echo.py PORT, on 127.0.0.1, as many clients as the fd limit).
ls2_echo_py() {
	cat >"$LS2_T/echo.py" <<'PY'
import asyncio, resource, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
async def echo(r, w):
    try:
        while True:
            b = await r.read(65536)
            if not b:
                break
            w.write(b)
            await w.drain()
    finally:
        w.close()
async def main():
    srv = await asyncio.start_server(echo, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
PY
}

# ls2_driver NAME [tdriver options and commands...]: start tdriver with the
# $LS2_TRANSPORT transport on the lab in the background; its output goes to
# $LS2_T/NAME.out.  Sets LS2_DRIVER_PID.
ls2_driver() {
	local name=$1
	shift
	"$RDHPF_TDRIVER" --plugin-dir "$RDHPF_PLUGIN_DIR" --transport "$LS2_TRANSPORT" \
		--url "$RDHPF_LAB_URL" --identity "$RDHPF_LAB_KEY" \
		--known-hosts "$RDHPF_LAB_KNOWN_HOSTS" --runtime-dir "$LS2_T/run-$name" \
		"$@" >"$LS2_T/$name.out" 2>"$LS2_T/$name.err" &
	LS2_DRIVER_PID=$!
	LS2_PIDS+=("$LS2_DRIVER_PID")
}

# wait_line NAME REGEX TIMEOUT_S: wait until $LS2_T/NAME.out has a line
# matching REGEX (grep -E).
wait_line() {
	local f="$LS2_T/$1.out" re=$2 t=$3
	lab_wait_for "$t" grep -qE -- "$re" "$f" 2>/dev/null
}

# The t=<wall ms> of the first line matching REGEX.
line_ms() {
	grep -E -- "$2" "$LS2_T/$1.out" | head -n1 | sed -E 's/^t=([0-9]+).*/\1/'
}

# ns_bg CMD...: run CMD in the lab namespace in the background (nsenter
# execs it, so the recorded pid is the command's own).
ns_bg() {
	nsenter --net="$LAB_NETNS_PATH" "$@" &
	LS2_NS_PIDS+=("$!")
}

http_get() { # http_get PORT [max seconds]
	curl -fsS --noproxy '*' -m "${2:-5}" -o /dev/null "http://127.0.0.1:$1/"
}
