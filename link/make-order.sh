#!/bin/bash
# Regenerates link/rcontain.order: the functions the container-start path
# executes, which `make build` asks the linker to place first.
#
#   link/make-order.sh            (as root; needs valgrind, perf, python3
#                                  and busybox-static)
#   BUILD_FLAGS=--no-default-features link/make-order.sh   (for such a build)
#
# Why: the kernel maps a binary's code in 64 KiB blocks around every page
# it touches, so the runtime's resident memory is set by how many blocks
# its executed functions are spread over, not by how much code runs.
# Packing the executed functions together is what keeps it small.
#
# The list comes from callgrind, run on the release binary built with
# symbols, over `run` of /bin/true and `state`/`start`/`delete` of a
# created container, completed by the functions a native `run` faults in
# outside the list (see below). Symbol names carry
# hashes that depend on the release profile and the dependency versions:
# rerun this after changing either. A stale list costs memory, never
# correctness.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/target/release/rcontain

vg() { # vg TAG CMD...: callgrind CMD (and its children) into $work/cg.TAG.*
    valgrind -q --tool=callgrind --demangle=no --trace-children=yes \
        --callgrind-out-file="$work/cg.$1.%p" "${@:2}" >/dev/null 2>&1 || true
}

# In a private mount namespace, valgrind's own files on a read-only mount:
# the runtime then sees a read-only exe, skips the re-exec and goes on.
if [ "${1:-}" = --in-ns ]; then
    work=$2
    d=$(dirname "$(readlink -f "$(command -v valgrind)")")/../libexec/valgrind
    mount --bind "$d" "$d"
    mount -o remount,bind,ro "$d"
    # As the re-executed runtime: back to "its" mount namespace first.
    _RCONTAIN_MNTNS_FD=3 vg run "$bin" --root "$work/root" run -b "$work/bundle" traced \
        3</proc/self/ns/mnt
    exit 0
fi

cd "$repo"
[ "$(id -u)" = 0 ] || { echo "make-order: run as root" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "make-order: apt-get install -y valgrind" >&2; exit 1; }

# The release build of `make build` (BUILD_FLAGS as there), keeping its
# symbols.
# shellcheck disable=SC2046,SC2086
env $(make -s print-static-env) cargo rustc --release --bin rcontain ${BUILD_FLAGS:-} -- $(make -s print-link-flags)
work=$(mktemp -d /tmp/rcontain-order.XXXXXX)
trap '"$bin" --root "$work/root" delete -f made >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
bundles/make-bundle.sh "$work/bundle" true >/dev/null

# As started: valgrind knows neither open_tree nor openat2, so the runtime
# takes its fallback (a re-exec through a private mount namespace) and its
# init stops at the first mount.
vg reexec "$bin" --root "$work/root" run -b "$work/bundle" reexec
unshare -m --propagation private "$0" --in-ns "$work"
"$bin" --root "$work/root" create -b "$work/bundle" made
for c in state start delete; do vg "$c" "$bin" --root "$work/root" "$c" made; done

# Every function callgrind saw, first seen first, keeping only names the
# binary defines. callgrind names a function once per file, "fn=(N) NAME",
# and then by "(N)" alone, in fn= and cfn= lines.
nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u > "$work/defined"
for f in "$work"/cg.reexec.* "$work"/cg.run.* "$work"/cg.state.* "$work"/cg.start.* "$work"/cg.delete.*; do
    sed -n 's/^c\{0,1\}fn=(\([0-9]*\))\(.*\)$/\1\2/p' "$f" |
        awk '{ if (NF > 1) n[$1] = $2; if ($1 in n) print n[$1] }'
done | awk '!seen[$0]++' | grep -Fxf "$work/defined" > "$work/seen"
# glibc picks its string functions by CPU when it starts, and valgrind's
# virtual CPU is not the one the runtime runs on: take every variant of
# those it saw (__memchr_avx2 -> __memchr_evex, __memchr_sse2, ...).
sed -n 's/^\(__[a-z0-9]*\)_\(sse\|ssse3\|avx\|evex\).*/\1_/p' "$work/seen" | sort -u |
    grep -F -f - "$work/defined" | grep -E '_(sse|ssse3|avx|evex)' > "$work/variants" || true
# Their resolvers run at every start, while relocating, before valgrind
# sees any code.
grep -E '_ifunc$' "$work/defined" > "$work/resolvers" || true
cat "$work/resolvers" "$work/seen" "$work/variants" | awk '!seen[$0]++' > link/rcontain.order
echo "make-order: $(wc -l < link/rcontain.order) functions from callgrind" >&2

# What callgrind cannot see: the code after the init's first mount, the
# runtime's own path once its container started (the traced one failed),
# glibc's start ("(below main)" to valgrind) and whatever depends on the
# real CPU. Natively, link with the list so far and trace `run`'s page
# faults: an instruction fetch that faults outside the listed functions
# names a function the list lacks (fault-around maps 64 KiB at a time, so
# a fault shows only the first such function of a block: repeat until
# none is left, or for at most 8 rounds).
command -v perf >/dev/null || { echo "make-order: no perf: callgrind's list only" >&2; exit 0; }
for round in 1 2 3 4 5 6 7 8; do
    # cargo does not see the list change: make it link again
    touch src/main.rs
    # shellcheck disable=SC2046,SC2086
    env $(make -s print-static-env) cargo rustc -q --release --bin rcontain ${BUILD_FLAGS:-} -- \
        $(make -s print-link-flags) $(make -s print-order-flags)
    perf record -q -o "$work/faults.data" -e exceptions:page_fault_user -- \
        "$bin" --root "$work/root" run -b "$work/bundle" "native$round" >/dev/null 2>&1
    perf script -i "$work/faults.data" -F pid,trace 2>/dev/null > "$work/faults"
    nm -S --defined-only "$bin" > "$work/symbols"
    entry=$(readelf -h "$bin" | awk '/Entry point/ {print $4}')
    python3 - "$entry" "$work/symbols" "$work/faults" link/rcontain.order > "$work/missing" <<'PY'
import bisect, sys

entry = int(sys.argv[1], 16)
syms = []
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) == 4 and f[2] in "tTwW":
        syms.append((int(f[0], 16), int(f[1], 16), f[3]))
syms.sort()
starts = [s[0] for s in syms]
listed = set(l.strip() for l in open(sys.argv[4]))
# "PID address=0x.. ip=0x.. error_code=0x..": the first fault is the
# runtime's own at its entry point, which gives where the binary was loaded.
faults = [dict(kv.split("=") for kv in l.split()[1:4]) for l in open(sys.argv[3])]
base = int(faults[0]["address"], 16) - entry
seen = set()
for f in faults:
    if not int(f["error_code"], 16) & 0x10:  # not an instruction fetch
        continue
    off = int(f["ip"], 16) - base
    i = bisect.bisect_right(starts, off) - 1
    if i < 0 or off >= syms[i][0] + max(syms[i][1], 1):
        continue
    name = syms[i][2]
    if name not in listed and name not in seen:
        seen.add(name)
        print(name)
PY
    [ -s "$work/missing" ] || break
    echo "make-order: round $round: $(wc -l < "$work/missing") more functions" >&2
    cat "$work/missing" >> link/rcontain.order
done
echo "make-order: $(wc -l < link/rcontain.order) functions in link/rcontain.order" >&2
