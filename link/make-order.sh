#!/bin/bash
# Regenerates link/rcontain.order: the functions the container-start path
# executes, which `make build` asks the linker to place first.
#
#   link/make-order.sh            (as root; needs valgrind and busybox-static)
#   BUILD_FLAGS=--no-default-features link/make-order.sh   (for such a build)
#
# Why: the kernel maps a binary's code in 64 KiB blocks around every page
# it touches, so the runtime's resident memory is set by how many blocks
# its executed functions are spread over, not by how much code runs.
# Packing the executed functions together is what keeps it small.
#
# The list comes from callgrind, run on the release binary built with
# symbols, over `run` of /bin/true and `state`/`start`/`delete` of a
# created container. valgrind 3.19 does not know openat2, so the traced
# init stops at its first mount: what the init runs after that (its own
# memory only, not the runtime's) stays in link order. Symbol names carry
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

# As started: up to the read-only re-exec, which fails under valgrind
# (its /proc/self/exe is not the runtime's).
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
echo "make-order: $(wc -l < link/rcontain.order) functions in link/rcontain.order" >&2
