#!/bin/bash
# Compare builds of rcontain with each other (bench/bench.sh compares one
# with runc and crun):
#
#   bench/compare.sh BIN BIN...            (as root; needs busybox-static)
#
# Per binary: latency of `run` of /bin/true on a busybox bundle (10 runs a
# round after 2 warm-ups: median, min, p90), CPU time per run (user + sys
# of the runtime and all it waited for, from bash's `times` around the 10
# runs of a round: median of the rounds), peak RSS as GNU time reports it
# (2 runs a round: median), binary size. COMPARE_ROUNDS rounds (default
# 10) alternate between the binaries, so that load from other processes on
# the machine spreads over all of them.
#
# Each binary's pages are first dropped from the page cache, so that all
# are read back the same way, by the runs' faults: how a file came into
# the cache changes how much a fault maps: a fresh copy made with cp(1)
# took 11 page faults fewer per `run` than the same bytes as the linker
# wrote them or as read back from disk, and 4-5 % less CPU.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rounds=${COMPARE_ROUNDS:-10}
[ $# -ge 2 ] || { echo "usage: $0 BIN BIN..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "compare: run as root" >&2; exit 1; }
work=$(mktemp -d /tmp/rcontain-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT
for bin in "$@"; do dd if="$bin" iflag=nocache count=0 status=none; done
# shellcheck source=bench/child-cpu.sh
. "$here/child-cpu.sh"
"$here/../bundles/make-bundle.sh" "$work/bundle" /bin/true >/dev/null

for ((r = 0; r < rounds; r++)); do
    for ((b = 1; b <= $#; b++)); do
        bin=${!b} root=$work/root-$b out=$work/res-$b
        mkdir -p "$root"
        for i in 1 2; do "$bin" --root "$root" run -b "$work/bundle" "w$r-$i" >/dev/null; done
        child_cpu "$work/times"
        c0=$REPLY
        for ((i = 0; i < 10; i++)); do
            t0=${EPOCHREALTIME/./}
            "$bin" --root "$root" run -b "$work/bundle" "r$r-$i" >/dev/null
            t1=${EPOCHREALTIME/./}
            echo $((t1 - t0)) >> "$out.run"
        done
        child_cpu "$work/times"
        echo $((REPLY - c0)) >> "$out.cpu"
        for i in 1 2; do
            /usr/bin/time -f %M -o "$out.one" "$bin" --root "$root" run -b "$work/bundle" "m$r-$i" >/dev/null
            tail -1 "$out.one" >> "$out.rss"
        done
    done
done

printf '%-40s %28s %12s %12s %10s\n' binary "run ms (median min p90)" "CPU ms/run" "RSS KiB" bytes
for ((b = 1; b <= $#; b++)); do
    out=$work/res-$b
    run=$(sort -n "$out.run" | awk '{v[NR]=$1} END {
        printf "%.2f %.2f %.2f", v[int((NR+1)/2)]/1000, v[1]/1000, v[int(NR*0.9)]/1000}')
    cpu=$(sort -n "$out.cpu" | awk '{v[NR]=$1} END {printf "%.2f", v[int((NR+1)/2)]/10}')
    rss=$(sort -n "$out.rss" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    printf '%-40s %28s %12s %12s %10s\n' "${!b}" "$run" "$cpu" "$rss" "$(stat -c %s "${!b}")"
done
