#!/usr/bin/env bash
# The plugin loader against a path swapped under it (issue 16, item 1): a
# helper exchanges the plugin directory with one of planted, world-writable
# files (renameat2 RENAME_EXCHANGE, as fast as it can) while `rdhpf plugins`
# loads.  Every planted file is refused by the checks, so its constructor must
# never run: the loader has to load the very file it checked.  Then the
# directory rules: group-writable plugin directory and a writable parent are
# refused, a sticky parent (/tmp) is not.
. "$(dirname "$0")/lib.sh"
: "${RDHPF_EVIL_PLUGIN:?}"

# Control: the planted constructor does record itself when loaded.
mkdir -m 755 "$T/ctl"
cp "$RDHPF_EVIL_PLUGIN" "$T/ctl/evil.so"
chmod 0644 "$T/ctl/evil.so"
RDHPF_EVIL_MARK=$T/ctl.mark RDHPF_PLUGIN_DIR=$T/ctl "$RDHPF_BIN" plugins >/dev/null 2>&1 || true
check "control: a loaded planted constructor leaves its mark" test -s "$T/ctl.mark"

mkdir -m 755 "$T/sw" "$T/sw/plugins" "$T/sw/evil"
for i in $(seq -w 1 24); do
	cp "$RDHPF_PLUGIN_DIR/runtime-fake.so" "$T/sw/plugins/p$i.so"
	cp "$RDHPF_EVIL_PLUGIN" "$T/sw/evil/p$i.so"
done
chmod 0755 "$T/sw/plugins"/*.so
chmod 0666 "$T/sw/evil"/*.so
cat >"$T/swap.py" <<'PY'
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, stop = (x.encode() for x in sys.argv[1:4])
end = time.monotonic() + float(sys.argv[4])
n = 0
while time.monotonic() < end and not os.path.exists(stop):
    for _ in range(200):
        if libc.renameat2(-100, a, -100, b, 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
            sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
    n += 200
print(n)
PY
"$PY" "$T/swap.py" "$T/sw/plugins" "$T/sw/evil" "$T/stop" 40 >"$T/swaps" 2>&1 &
swapper=$!
runs=0 loaded=0 t0=$SECONDS
# Bounded: 150 loads or 30 s, whichever first.
while [ $runs -lt 150 ] && [ $((SECONDS - t0)) -lt 30 ]; do
	out=$(RDHPF_EVIL_MARK=$T/evil.mark RDHPF_PLUGIN_DIR=$T/sw/plugins "$RDHPF_BIN" plugins 2>&1 || true)
	if grep -q '^runtime  *fake' <<<"$out"; then loaded=$((loaded + 1)); fi
	runs=$((runs + 1))
done
touch "$T/stop"
wait $swapper || true
swaps=$(cat "$T/swaps")
ran=$(wc -l <"$T/evil.mark" 2>/dev/null || echo 0)
echo "$runs loads, $loaded of them loaded the real plugins, $swaps exchanges, planted constructor ran $ran times"
check "the swapper really exchanged the directories" test "${swaps//[^0-9]/}" -gt 0
check "loads saw the real plugins" test "$loaded" -gt 0
check "no planted constructor ran in $runs loads" test "$ran" -eq 0

# Where /proc is absent the loader opens the checked path again (the
# directory chain being trusted) and compares the inode: plugins still load.
# (The sanitizers' runtime itself needs /proc: not under ASan.)
if grep -q 'libasan\|libubsan' <<<"$(ldd "$RDHPF_BIN" 2>/dev/null)"; then
	echo "skip - without /proc: the sanitizers need /proc"
elif [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
	out=$(unshare --mount --propagation private sh -c \
		'mount -t tmpfs none /proc && test ! -e /proc/self && exec "$0" plugins' "$RDHPF_BIN" 2>&1 || true)
	check "without /proc the plugins load by path (fallback)" grep -q '^runtime  *fake' <<<"$out"
else
	echo "skip - without /proc: needs root and unshare"
fi

# Directory rules.
mkdir -m 755 "$T/gw"
cp "$RDHPF_PLUGIN_DIR/runtime-fake.so" "$T/gw/"
chmod 0775 "$T/gw"
out=$(RDHPF_PLUGIN_DIR=$T/gw "$RDHPF_BIN" plugins 2>&1 || true)
echo "$out"
check "group-writable plugin directory refused, mode named" \
	grep -q "$T/gw is group-writable (mode 0775)" <<<"$out"
check "nothing loaded from it" eval '! grep -q "^runtime  *fake" <<<"$out"'

mkdir -m 777 "$T/open"
chmod 0777 "$T/open"
mkdir -m 755 "$T/open/plugins"
cp "$RDHPF_PLUGIN_DIR/runtime-fake.so" "$T/open/plugins/"
out=$(RDHPF_PLUGIN_DIR=$T/open/plugins "$RDHPF_BIN" plugins 2>&1 || true)
echo "$out"
check "world-writable parent of the plugin directory refused, named" \
	grep -q "parent $T/open is world-writable (mode 0777)" <<<"$out"
chmod 0775 "$T/open"
out=$(RDHPF_PLUGIN_DIR=$T/open/plugins "$RDHPF_BIN" plugins 2>&1 || true)
check "group-writable parent refused" grep -q "parent $T/open is group-writable" <<<"$out"
chmod 1777 "$T/open"
out=$(RDHPF_PLUGIN_DIR=$T/open/plugins "$RDHPF_BIN" plugins 2>&1 || true)
check "sticky parent (like /tmp) accepted" grep -q '^runtime  *fake' <<<"$out"
ln -s "$T/open/plugins" "$T/link"
chmod 0777 "$T/open"
out=$(RDHPF_PLUGIN_DIR=$T/link "$RDHPF_BIN" plugins 2>&1 || true)
check "a symlink to a directory under a writable parent is refused too" \
	grep -q "parent $T/open is world-writable" <<<"$out"
finish
