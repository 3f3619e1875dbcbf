#!/usr/bin/env python3
"""Every program and shared library that rdhpf's build, lab, tests, benches and
demo run must come from a Debian package that scripts/deps installs.

    check_deps.py SOURCE_DIR [BUILD_DIR]

Three checks, each error naming the file (and line) and the package:

1. scripts/programs.list is the one list of programs.  Each is resolved on
   PATH (or by its absolute path), mapped to its package with `dpkg -S`, and
   that package must be named in scripts/deps -- or be one that every Debian
   system has (Essential: yes, or Priority: required, which is what
   debootstrap's minimal variant installs).  The list's package column must
   agree with dpkg.
2. The project's scripts (shell, the bash embedded in meson.build, Python's
   subprocess calls, C's exec*p calls) are scanned for the commands they run;
   a command that is neither a shell builtin, a function of ours, a file of
   the project, nor in the list is an error: a program missing from the list
   would escape check 1.
3. Every library that a meson.build asks pkg-config for: the package that
   owns its .pc file (the -dev package) must be named in scripts/deps.
4. With BUILD_DIR: the shared libraries that the built binaries and plugins
   link (ldd) must come from packages that scripts/deps installs, directly or
   as a dependency of a named package.

Exit 0 when all hold, 1 with one line per problem, 77 (skip) off Debian.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

SHELL_WORDS = set("""
    ! [[ ]] [ ] { } ( ) case esac if then else elif fi for in do done while until
    function select time coproc
    . : alias bg bind break builtin caller cd command compgen complete compopt
    continue declare dirs disown echo enable eval exec exit export false fc fg
    getopts hash help history jobs kill let local logout mapfile popd printf
    pushd pwd read readarray readonly return set shift shopt source suspend
    test times trap true type typeset ulimit umask unalias unset wait
""".split())

# Commands that run another command: (name, options that take an argument,
# positional arguments to skip before the command).
WRAPPERS = {
    "env": ({"-u", "--unset", "-C", "--chdir"}, 0),
    "exec": ({"-a"}, 0),
    "command": (set(), 0),
    "nohup": (set(), 0),
    "setsid": (set(), 0),
    "timeout": ({"-s", "-k", "--signal", "--kill-after"}, 1),
    "nsenter": ({"-t", "--target", "-n", "--net"}, 0),
    "flock": ({"-w", "--timeout", "-E", "--conflict-exit-code"}, 1),
    "xargs": ({"-I", "-n", "-P", "-d", "-a", "-s", "-L"}, 0),
    "setpriv": (set(), 0),
    "nice": ({"-n"}, 0),
    "chroot": (set(), 1),
    "unshare": ({"--propagation"}, 0),
    "strace": ({"-e", "-o", "-p", "-s"}, 0),
    "valgrind": (set(), 0),
    # our own shell functions that run their arguments as a command
    "_lab_ns": (set(), 0),
    "lab_ns": (set(), 0),
    "_lab_spawn": (set(), 1),
    "lab_wait_for": (set(), 1),
}

SEPARATORS = re.compile(r"\|\||&&|;;|[;|&`]|\$\(|<\(|>\(|\(|\)|\{|\}|\bthen\b|\bdo\b|\belse\b|\bif\b|\belif\b|\bwhile\b|\buntil\b|!(?=\s)")
ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
FUNC_DEF = re.compile(r"^\s*(?:function\s+)?([A-Za-z_][A-Za-z0-9_:-]*)\s*\(\)\s*\{?")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


# Programs resolve as on a new Debian machine: /usr/local and per-user
# installs (pyenv, a newer docker client) may shadow them here, not there.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def resolve(prog):
    if prog.startswith("/"):
        hits = sorted(glob.glob(prog))
        return hits[-1] if hits else None
    return shutil.which(prog, path=SYSTEM_PATH)


def sh(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    return r.returncode, r.stdout


def read_deps_packages(src):
    """The package names in scripts/deps's `packages=( ... )` array."""
    path = os.path.join(src, "scripts", "deps")
    names, inside = set(), False
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not inside and line.startswith("packages=("):
                inside, line = True, line[len("packages=("):]
            if inside:
                end = ")" in line
                names.update(w for w in line.replace(")", " ").split() if w)
                if end:
                    break
    return names


def read_programs(src):
    """[(program, package, line)] from scripts/programs.list."""
    out = []
    path = os.path.join(src, "scripts", "programs.list")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) < 2:
                raise SystemExit(f"{path}:{n}: expected 'PROGRAM PACKAGE [used by...]'")
            out.append((words[0], words[1], n))
    return out


def package_of(path):
    """The package that owns path (following links and /usr-merge), or None."""
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        if p.startswith("/usr/"):
            cands.append(p[4:])
        else:
            cands.append("/usr" + p)
    for p in cands:
        rc, out = sh("dpkg", "-S", p)
        if rc == 0:
            for line in out.splitlines():
                pkg, _, owned = line.partition(": ")
                if owned.strip() == p and "diversion" not in pkg:
                    return pkg.split(":")[0].split(",")[0].strip()
    return None


def installed_packages():
    """{name: (essential_or_required, [dependency alternatives])}, and provides."""
    rc, out = sh("dpkg-query", "-W", "-f",
                 "${Package}\t${db:Status-Status}\t${Essential}\t${Priority}\t${Depends}\t${Pre-Depends}\t${Provides}\n")
    pkgs, provides = {}, {}
    for line in out.splitlines():
        name, status, ess, prio, dep, pre, prov = (line.split("\t") + [""] * 7)[:7]
        if status != "installed":
            continue
        alts = []
        for clause in filter(None, (c.strip() for c in (dep + "," + pre).split(","))):
            alts.append([re.sub(r"[\s(:].*", "", a.strip()) for a in clause.split("|")])
        pkgs[name] = (ess == "yes" or prio == "required", alts)
        for p in filter(None, (re.sub(r"[\s(].*", "", x.strip()) for x in prov.split(","))):
            provides.setdefault(p, []).append(name)
    return pkgs, provides


def closure(roots, pkgs, provides):
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for alts in pkgs.get(p, (False, []))[1]:
            for a in alts:
                real = [a] if a in pkgs else provides.get(a, [])
                real = [r for r in real if r in pkgs]
                if real:
                    todo.extend(real)
                    break
    return seen


def clean_shell(text, subs):
    """The text with comments, quoted strings, heredoc bodies and arithmetic
    removed, and each command substitution ($(...), <(...), >(...)) replaced by
    the word S; the substituted commands are appended to subs as
    (line_index, text).  Newlines are kept so line numbers stay right."""
    out, i, n = [], 0, len(text)
    heredocs = []

    def skip_to_eol(j):
        while j < n and text[j] != "\n":
            j += 1
        return j

    def line_index():
        return "".join(out).count("\n")

    def substitution(j):  # text[j] is the '(' of $( <( >(
        k = matching(text, j)
        subs.append((line_index(), text[j + 1:k]))
        out.append("S" + "\n" * text.count("\n", j, k))
        return k + 1

    while i < n:
        c = text[i]
        if c == "\n":
            out.append(c)
            i += 1
            # Heredoc bodies start on the next line: data, not commands.
            while heredocs:
                word, dash = heredocs.pop(0)
                while i < n:
                    j = skip_to_eol(i)
                    body = text[i:j]
                    out.append("\n")
                    i = j + 1
                    if (body.lstrip("\t") if dash else body) == word:
                        break
            continue
        if c == "\\" and i + 1 < n:
            out.append(text[i:i + 2] if text[i + 1] == "\n" else "x")
            i += 2
            continue
        if c == "#" and (i == 0 or text[i - 1] in " \t\n;("):
            i = skip_to_eol(i)
            continue
        if c == "'":
            j = text.find("'", i + 1)
            j = n if j < 0 else j
            out.append("Q" + "\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if c == '"':
            i += 1
            out.append("Q")
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 2
                elif text.startswith("$((", i):
                    j = matching(text, i + 1)
                    out.append("\n" * text.count("\n", i, j))
                    i = j + 1
                elif text.startswith("$(", i):
                    out.append(" ")
                    i = substitution(i + 1)
                elif text.startswith("${", i):
                    j = matching(text, i + 1, "{", "}")
                    out.append("\n" * text.count("\n", i, j))
                    i = j + 1
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
            i += 1
            continue
        if text.startswith("$((", i) or (c == "(" and text.startswith("((", i)):
            j = matching(text, i + (1 if c == "$" else 0))
            out.append("\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if text.startswith("${", i):
            j = matching(text, i + 1, "{", "}")
            out.append("V" + "\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if c in "$<>" and text.startswith("(", i + 1):
            i = substitution(i + 1)
            continue
        m = HEREDOC.match(text, i)
        if m and text[i:i + 3] != "<<<":
            heredocs.append((m.group(2), text[i + 2] == "-"))
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def matching(text, i, open_="(", close=")"):
    """Index of the close that matches the open at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


CASE_PATTERN = re.compile(r"^\s*[^\s();|]+(\s*\|\s*[^\s();|]+)*\)")
ARRAY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=\([^)]*\)")
CASE_IN = re.compile(r"\bin\s+[^\s();|]+(\s*\|\s*[^\s();|]+)*\)")
TEST = re.compile(r"\[\[.*?\]\]")


def shell_commands(text, origin, first_line=1):
    """Yield (line_no, command) for the commands a bash script runs."""
    subs = []
    lines = clean_shell(text, subs).split("\n")
    for idx, inner in subs:
        yield from shell_commands(inner, origin, first_line + idx)
    i, in_array = 0, False
    while i < len(lines):
        n, line = i + first_line, lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i]
        i += 1
        if in_array:
            if ")" in line:
                in_array, line = False, line.split(")", 1)[1]
            else:
                continue
        line = ARRAY.sub("A=", line)
        m = re.search(r"[A-Za-z_][A-Za-z0-9_]*\+?=\(", line)
        if m:
            in_array, line = True, line[:m.start()]
        line = CASE_IN.sub("in ;", TEST.sub("", line))
        line = ";;".join(CASE_PATTERN.sub("", part) for part in line.split(";;"))
        for seg in SEPARATORS.split(line):
            yield from command_of(seg.split(), n)


def command_of(words, n):
    k = 0
    while k < len(words) and (ASSIGN.match(words[k]) or words[k] in ("!", "time", "sudo")):
        k += 1
    if k >= len(words):
        return
    w = words[k].strip("\"")
    if w in WRAPPERS:
        yield n, w
        opts_with_arg, positional = WRAPPERS[w]
        k += 1
        while k < len(words) and words[k].startswith("-"):
            opt = words[k].split("=", 1)[0]
            k += 2 if (opt in opts_with_arg and "=" not in words[k]) else 1
        while k < len(words) and ASSIGN.match(words[k]):
            k += 1
        k += positional
        yield from command_of(words[k:], n)
        return
    if w in ("ip",) and words[k + 1:k + 3] == ["netns", "exec"]:
        yield n, w
        yield from command_of(words[k + 4:], n)
        return
    yield n, w


def is_command_word(w):
    if not w or w in SHELL_WORDS or w in ("Q", "S", "V"):
        return False
    if w[0] in "$<>-=+%0123456789'\"*[~@." or w.endswith("="):
        return False
    if "$" in w or "=" in w or "}" in w:
        return False
    return re.match(r"^[A-Za-z_./][A-Za-z0-9_.+/-]*$", w) is not None


def project_files(src):
    rc, out = sh("git", "-C", src, "ls-files", "-co", "--exclude-standard")
    if rc == 0 and out.strip():
        return [f for f in out.splitlines() if os.path.isfile(os.path.join(src, f))]
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d != ".git" and not d.startswith("build")]
        files += [os.path.relpath(os.path.join(root, f), src) for f in names]
    return files


def is_shell(src, rel):
    if rel.endswith(".sh"):
        return True
    try:
        with open(os.path.join(src, rel), "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh"))


def scan(src):
    """{command: [(file, line)]} for every command the project's scripts run."""
    used, functions = {}, set()
    texts = []
    for rel in project_files(src):
        if rel.startswith("tests/deps/"):
            continue
        path = os.path.join(src, rel)
        base = os.path.basename(rel)
        if is_shell(src, rel):
            texts.append((rel, open(path, encoding="utf-8", errors="replace").read(), 1))
        elif base == "meson.build":
            text = open(path, encoding="utf-8").read()
            # Multi-line bash programs handed to find_program('bash') -c.
            for m in re.finditer(r"'''(.*?)'''", text, re.S):
                texts.append((rel, m.group(1), text.count("\n", 0, m.start()) + 1))
            for m in re.finditer(r"find_program\('([^'/]+)'\)", text):
                if "." not in m.group(1):
                    used.setdefault(m.group(1), []).append((rel, text.count("\n", 0, m.start()) + 1))
        elif rel.endswith(".py"):
            text = open(path, encoding="utf-8").read()
            for m in re.finditer(r"(?:subprocess\.(?:run|Popen|call|check_call|check_output)|shutil\.which)\(\s*\[?\s*\"([^\"]+)\"", text):
                used.setdefault(m.group(1), []).append((rel, text.count("\n", 0, m.start()) + 1))
        elif rel.endswith(".c"):
            text = open(path, encoding="utf-8").read()
            for m in re.finditer(r"\b(?:execlp|execvp|posix_spawnp)\(\s*\"([^\"]+)\"", text):
                used.setdefault(m.group(1), []).append((rel, text.count("\n", 0, m.start()) + 1))
    for rel, text, first in texts:
        for line in text.split("\n"):
            m = FUNC_DEF.match(line)
            if m:
                functions.add(m.group(1))
    for rel, text, first in texts:
        for n, w in shell_commands(text, rel, first):
            if not is_command_word(w) or w in functions:
                continue
            if "/" in w and not w.startswith("/"):
                continue  # a file of the project (tests/lab/up, ./x)
            used.setdefault(w, []).append((rel, n))
    return used


SELF_TEST = r"""
set -e  # a comment: rm -rf /
x=$(alpha --flag "$(bravo)" | charlie) && delta "quoted $(echo) text; not_a_cmd"
timeout 5 echo_wrapped_not; timeout -s KILL 5 foxtrot arg
nsenter --net=/run/netns/x golf; env -u HOME A=b hotel
arr=(india juliet
  kilo)
case $v in a | b) lima ;; c) mike ;; esac
cat <<EOF
november oscar
EOF
awk '{ papa }' file; [[ $x == quebec ]] && romeo
if sierra; then tango; fi
"""
SELF_TEST_WANT = {"alpha", "bravo", "charlie", "delta", "echo_wrapped_not", "foxtrot", "golf",
                  "hotel", "lima", "mike", "cat", "awk", "romeo", "sierra", "tango", "timeout",
                  "nsenter", "env"}


def self_test():
    """The scanner itself: what it must find in a crafted script, and what not."""
    got = {w for _, w in shell_commands(SELF_TEST, "self-test") if is_command_word(w)}
    missing, extra = SELF_TEST_WANT - got, got - SELF_TEST_WANT
    if missing or extra:
        print(f"FAIL: scanner self-test: missed {sorted(missing)}, wrongly found {sorted(extra)}")
        return False
    return True


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().split("\n\n")[1])
        return 2
    src = sys.argv[1]
    build = sys.argv[2] if len(sys.argv) > 2 else None
    if not shutil.which("dpkg") or not os.path.exists("/etc/debian_version"):
        print("SKIP: not a Debian system (no dpkg)")
        return 77
    if not self_test():
        return 1
    errors = []
    named = read_deps_packages(src)
    if not named:
        print("FAIL: found no packages=( ... ) list in scripts/deps")
        return 1
    pkgs, provides = installed_packages()
    base = {p for p, (req, _) in pkgs.items() if req}
    programs = read_programs(src)
    listed = {p for p, _, _ in programs}

    # 1. The list: every program resolves and comes from a named package.
    checked = 0
    for prog, pkg, n in programs:
        path = resolve(prog)
        if not path:
            errors.append(f"scripts/programs.list:{n}: {prog}: not installed "
                          f"(scripts/deps must install package {pkg})")
            continue
        owner = package_of(path)
        if owner is None:
            errors.append(f"scripts/programs.list:{n}: {prog} ({path}) belongs to no Debian package")
            continue
        if owner != pkg:
            errors.append(f"scripts/programs.list:{n}: {prog} ({path}) comes from package {owner}, "
                          f"the list says {pkg}")
        if owner not in named and owner not in base:
            errors.append(f"scripts/deps: package {owner} is not installed by scripts/deps, "
                          f"but {prog} ({path}) comes from it (scripts/programs.list:{n})")
        checked += 1

    # 2. Every command the scripts run is in the list.
    used = scan(src)
    for cmd in sorted(used):
        if cmd in listed or os.path.basename(cmd) in listed:
            continue
        where = ", ".join(f"{f}:{n}" for f, n in used[cmd][:3])
        more = f" (+{len(used[cmd]) - 3} more)" if len(used[cmd]) > 3 else ""
        path = resolve(cmd)
        if path:
            owner = package_of(path) or "no package"
            errors.append(f"{where}{more}: runs {cmd} ({path}, package {owner}), "
                          f"which is not in scripts/programs.list")
        else:
            errors.append(f"{where}{more}: runs {cmd}, which is not installed and not in "
                          f"scripts/programs.list")

    # 3. The libraries the build asks pkg-config for: their .pc file's package
    # (the -dev package) must be named.
    pcs = 0
    for rel in project_files(src):
        if os.path.basename(rel) != "meson.build":
            continue
        text = open(os.path.join(src, rel), encoding="utf-8").read()
        for m in re.finditer(r"\bdependency\(\s*'([^']+)'", text):
            name, line = m.group(1), text.count("\n", 0, m.start()) + 1
            if name in ("threads",):
                continue
            rc, out = sh("pkg-config", "--variable=pcfiledir", name)
            pc = os.path.join(out.strip(), name + ".pc") if rc == 0 else None
            if not pc or not os.path.exists(pc):
                errors.append(f"{rel}:{line}: the build needs pkg-config's {name}, which is not installed "
                              f"(its -dev package must be in scripts/deps)")
                continue
            pcs += 1
            owner = package_of(pc)
            if owner is None:
                errors.append(f"{rel}:{line}: {pc} belongs to no Debian package")
            elif owner not in named:
                errors.append(f"scripts/deps: package {owner} is not installed by scripts/deps, but "
                              f"the build needs it for {name} ({rel}:{line})")

    # 4. Shared libraries of what we build.
    libs_checked = 0
    if build:
        have = closure(named | base, pkgs, provides)
        elfs = []
        for root, dirs, names in os.walk(build):
            dirs[:] = [d for d in dirs if not d.endswith(".p") and d != "meson-private"]
            for f in names:
                p = os.path.join(root, f)
                if os.access(p, os.X_OK) or f.endswith(".so"):
                    with open(p, "rb") as fh:
                        if fh.read(4) == b"\x7fELF":
                            elfs.append(p)
        libs = {}
        for e in elfs:
            rc, out = sh("ldd", e)
            for line in out.splitlines():
                m = re.match(r"\s*(\S+) => (/\S+)", line)
                if m:
                    libs.setdefault(m.group(2), os.path.relpath(e, build))
        for lib, user in sorted(libs.items()):
            owner = package_of(lib)
            libs_checked += 1
            if owner is None:
                errors.append(f"{user} links {lib}, which belongs to no Debian package")
            elif owner not in have:
                errors.append(f"scripts/deps: package {owner} is not installed by scripts/deps "
                              f"(directly or as a dependency), but {user} links {lib} from it")

    for e in errors:
        print("FAIL:", e)
    print(f"deps: {checked} programs listed and mapped, {len(used)} commands found in the scripts, "
          f"{pcs} pkg-config libraries, {libs_checked} shared libraries, {len(named)} packages named in scripts/deps: "
          f"{len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
