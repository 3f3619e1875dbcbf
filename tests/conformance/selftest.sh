#!/usr/bin/env bash
# rdhpf-conformance's own promises: a test that cannot run is a skip with
# its reason and fails the run (unless --allow-skip); a leak is named by
# handle and callback; a create that accepts what validate_option refuses
# fails; a usage error is exit 2.
#   selftest.sh RDHPF-CONFORMANCE RUNTIME-STATIC.so RUNTIME-LEAKY.so
set -uo pipefail
conf=$1 static=$2 leaky=$3
fails=0
ok() { echo "ok   - $*"; }
not_ok() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION CMD...
	local d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
has() { grep -qF -- "$1" <<<"$out"; }

out=$("$conf" runtime "$static" --option ports=18556 2>&1); rc=$?
echo "$out"
check "without --expect-port: exit 1" test "$rc" -eq 1
check "the watch/list port test is a skip with its reason" \
	has "skip 7 - port-delivered: no --expect-port N"
check "without --bad-option: a skip with its reason" has "skip 4 - bad-option-refused: no --bad-option"
check "the summary counts the skips" has "2 skipped (a skip fails the run: --allow-skip)"
out=$("$conf" runtime "$static" --option ports=18556 --allow-skip 2>&1); rc=$?
check "--allow-skip: exit 0" test "$rc" -eq 0

out=$("$conf" runtime "$leaky" --bad-option mode=bad --expect-port 18555 2>&1); rc=$?
echo "$out"
check "leaky: exit 1" test "$rc" -eq 1
check "the leak named by handle and callback" \
	has "not ok 5 - list: leak after destroy: timer callback leaky_tick (runtime-leaky.so+"
check "create accepting a refused value fails" \
	has "not ok 4 - bad-option-refused: create accepted mode=bad that validate_option refuses"

out=$("$conf" runtime "$static" --frobnicate 2>&1); rc=$?
check "unknown option: exit 2" test "$rc" -eq 2
out=$("$conf" runtime "$static" --option nosuchkey=1 2>&1); rc=$?
check "undeclared --option key: exit 2, named" bash -c "test $rc -eq 2 && grep -q nosuchkey <<<'$out'"
out=$("$conf" transport "$static" 2>&1); rc=$?
check "a runtime given as a transport: exit 2, said" bash -c "test $rc -eq 2 && grep -q 'a runtime plugin, not a transport' <<<'$out'"

[[ $fails -eq 0 ]] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
