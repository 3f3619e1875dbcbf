#!/usr/bin/env bash
# The SDK as an outside plugin author gets it (issue 11's acceptance):
# `meson install --destdir`, then, in a directory outside the repository,
# build static.c, listening.c and the tutorial's runtime
# (docs/examples/portfile.c) with nothing but
# `gcc … $(pkg-config --cflags --libs rdhpf-plugin)` against the installed
# tree, run the installed rdhpf-conformance on each, and check that the
# installed rdhpf loads them and that check-config reports a bad option
# value of one as FILE:LINE: [host] key: reason.
#   outoftree.sh BUILD_DIR SOURCE_ROOT
set -euo pipefail
build=$1 src=$2
W=$(mktemp -d /tmp/rdhpf-outoftree.XXXXXX)
chmod 700 "$W"
lpid=
cleanup() {
	if [[ -n $lpid ]]; then kill "$lpid" 2>/dev/null || true; fi
	rm -rf "$W"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   - $*"; }
not_ok() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION CMD...
	local d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

D=$W/destdir
meson install -C "$build" --destdir "$D" --no-rebuild --quiet >"$W/install.log" 2>&1 ||
	{ cat "$W/install.log"; echo "FAIL - meson install --destdir"; exit 1; }
pc=$(find "$D" -name rdhpf-plugin.pc -print -quit)
[[ -n $pc ]] || { echo "FAIL - no rdhpf-plugin.pc installed"; exit 1; }
conf=$(find "$D" -path '*/bin/rdhpf-conformance' -print -quit)
rdhpf=$(find "$D" -path '*/bin/rdhpf' -print -quit)
[[ -x $conf ]] || { echo "FAIL - rdhpf-conformance not installed"; exit 1; }
[[ -x $rdhpf ]] || { echo "FAIL - rdhpf not installed"; exit 1; }
for f in rdhpf/plugin.h rdhpf/sdk.h; do
	check "$f installed" test -n "$(find "$D" -path "*/include/$f" -print -quit)"
done
check "librdhpf-plugin.a installed" test -n "$(find "$D" -name librdhpf-plugin.a -print -quit)"

# The flags, as a packager's sysroot would give them: every path inside D.
export PKG_CONFIG_PATH=${pc%/*} PKG_CONFIG_SYSROOT_DIR=$D
flags=$(pkg-config --cflags --libs rdhpf-plugin)
echo "pkg-config --cflags --libs rdhpf-plugin: $flags"
check "the flags name no source tree" bash -c "! grep -qF -- '$src' <<<'$flags'"
check "jansson is private (only --static links it)" bash -c "! grep -q -- -ljansson <<<'$flags'"
plugindir=$(pkg-config --variable=plugindir rdhpf-plugin)
check "plugindir variable set ($plugindir)" test -n "$plugindir"
# pkgconf puts the sysroot in front of variables too; pkg-config does not.
[[ $plugindir == "$D"/* ]] || plugindir=$D$plugindir
check "plugindir holds the installed plugins" test -f "$plugindir/transport-openssh.so"

# Out of tree: copies of the sources in W, compiled from W.
P=$W/plugins
mkdir "$P"
chmod 700 "$P"
cp "$src/plugins/runtime-static/static.c" "$src/plugins/runtime-listening/listening.c" \
	"$src/docs/examples/portfile.c" "$W/"
cd "$W"
for f in static listening portfile; do
	# shellcheck disable=SC2086 # the flags are words
	if gcc -std=c17 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden \
		-o "$P/runtime-$f.so" "$f.c" $flags 2>"$W/cc-$f.log"; then
		ok "runtime-$f builds with only the installed SDK"
	else
		cat "$W/cc-$f.log"
		not_ok "runtime-$f builds with only the installed SDK"
	fi
done

# The installed rdhpf-conformance on each (this machine as the remote).
run_conf() { # run_conf NAME ARGS...
	local n=$1; shift
	if "$conf" runtime "$P/runtime-$n.so" "$@" >"$W/conf-$n.log" 2>&1; then
		ok "rdhpf-conformance runtime runtime-$n.so"
	else
		not_ok "rdhpf-conformance runtime runtime-$n.so"
	fi
	sed 's/^/    /' "$W/conf-$n.log"
}
run_conf static --option "ports=5432, 18090-18092" --bad-option "ports=0" --expect-port 18091
python3 -c '
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(600)
' >"$W/lport" &
lpid=$!
for _ in $(seq 100); do [[ -s $W/lport ]] && break; sleep 0.05; done
run_conf listening --bad-option "include=x" --expect-port "$(cat "$W/lport")" \
	--stop-cmd "kill $lpid"
printf 'web 18123 18124\n# a comment\ndb 15432\n' >"$W/ports"
run_conf portfile --option "file=$W/ports" --bad-option "file=relative" \
	--expect-port 18123 --stop-cmd "sed -i /^web/d $W/ports"

# The installed rdhpf loads them, next to the installed plugins.
cp "$plugindir"/*.so "$P/"
out=$(RDHPF_PLUGIN_DIR=$P "$rdhpf" plugins 2>&1)
echo "$out"
for n in static listening portfile; do
	check "rdhpf plugins lists $n" grep -Eq "^runtime +$n " <<<"$out"
done
check "no plugin refused" bash -c "! grep -q refused <<<'$out'"
cat >"$W/good.ini" <<C
[host "a"]
url = ssh://user@example.net
runtime = portfile
file = /srv/ports
C
cat >"$W/bad.ini" <<C
[host "a"]
url = ssh://user@example.net
runtime = portfile
file = srv/ports
C
chmod 600 "$W/good.ini" "$W/bad.ini"
check "check-config accepts the out-of-tree runtime" \
	env RDHPF_PLUGIN_DIR="$P" "$rdhpf" check-config "$W/good.ini"
rc=0; out=$(RDHPF_PLUGIN_DIR=$P "$rdhpf" check-config "$W/bad.ini" 2>&1) || rc=$?
echo "$out"
check "check-config refuses file = srv/ports" test "$rc" -ne 0
check "as FILE:LINE: [host] key: reason" grep -q 'bad.ini:4: \[host "a"\] file: ' <<<"$out"

if [[ $fails -ne 0 ]]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
exit 0
