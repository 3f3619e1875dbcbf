#!/usr/bin/env bash
# The lab names the Debian package to install when a program is missing
# (needs no root: only the lab's pure helpers run).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/lab/lib.sh
source "$here/lib.sh"
fail=0
check() { # check WHAT GOT WANT
	if [[ "$2" == *"$3"* ]]; then
		echo "ok   - $1"
	else
		echo "FAIL - $1: got '$2', want '$3'"
		fail=1
	fi
}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
# podman's own words when its network backend is missing (podman 4.3).
printf '%s\n' 'Error: could not find "netavark" in one of [/usr/local/libexec/podman /usr/local/lib/podman /usr/libexec/podman /usr/lib/podman].  To resolve this error, set the helper_binaries_dir key in the `[engine]` section of containers.conf to the directory containing your helper binaries.' >"$t/err"
check "podman's missing helper names its package" "$(_lab_podman_explain "$t/err")" \
	"podman needs netavark, which is not installed: apt-get install netavark"
printf 'Error: could not find "aardvark-dns" in one of [/usr/lib/podman]\n' >"$t/err"
check "aardvark-dns too" "$(_lab_podman_explain "$t/err")" "apt-get install aardvark-dns"
printf 'Error: something else entirely\n' >"$t/err"
check "other errors pass through" "$(_lab_podman_explain "$t/err")" "something else entirely"
check "package of a program" "$(_lab_package_of iptables)" "iptables"
check "package of a path" "$(_lab_package_of /usr/sbin/sshd)" "openssh-server"
# A missing program is reported with its package (here every program is
# taken as missing).
missing=$(
	_lab_have() { return 1; }
	_lab_missing socat ssh
)
check "missing programs named with packages" "$missing" "socat (Debian package socat)"
check "both of them" "$missing" "ssh (Debian package openssh-client)"
check "install hint" "$(_lab_missing_hint "$missing")" "apt-get install openssh-client socat"
exit $fail
