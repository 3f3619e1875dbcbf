#!/usr/bin/env bash
# tests/style/check.sh SRCROOT: every C file of the tree is formatted as
# .clang-format says (one style, not two).  Prints the files that are not
# and how to fix them.  clang-format comes from scripts/deps (Debian 12:
# version 14; another major may format differently, so it is pinned there).
set -euo pipefail
root=${1:?usage: check.sh SRCROOT}
cd "$root"
[ -f .clang-format ] || { echo "style: no .clang-format in $root" >&2; exit 1; }
mapfile -t files < <(find core plugins sdk tools tests bench docs/examples -name '*.[ch]' -type f 2>/dev/null | sort)
[ "${#files[@]}" -gt 0 ] || { echo "style: no C files found under $root" >&2; exit 1; }
bad=()
for f in "${files[@]}"; do
	if ! clang-format --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
		bad+=("$f")
	fi
done
if [ "${#bad[@]}" -gt 0 ]; then
	printf 'style: %d of %d files differ from .clang-format:\n' "${#bad[@]}" "${#files[@]}" >&2
	printf '  %s\n' "${bad[@]}" >&2
	echo "fix: clang-format -i --style=file <files>" >&2
	exit 1
fi
echo "style: ${#files[@]} files formatted as .clang-format says"
