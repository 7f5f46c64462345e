#!/bin/bash
# Benchmark rcontain against runc and crun on the same busybox bundle.
#
#   bench/bench.sh [RCONTAIN_BIN]          (as root; `make bench` calls it)
#
# Per runtime: latency of `run` of /bin/true (BENCH_RUNS runs, default 100,
# in rounds alternating between runtimes, each after 2 warm-ups: median,
# min, p90), latency of create+start+delete -f
# (same statistics), peak RSS of the runtime process as GNU time reports it
# (median of 20 runs), and binary size. Prints a table with ratios against
# runc and crun and writes docs/benchmarks.md (BENCH_DOC to override).
# Every runtime gets its own --root temp dir; everything is removed after.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
runs=${BENCH_RUNS:-100}
rss_runs=${BENCH_RSS_RUNS:-20}
doc=${BENCH_DOC:-$repo/docs/benchmarks.md}

# --- one runtime, called in a subprocess (possibly in its own mount ns) ----
if [ "${1:-}" = --measure ]; then
    shift
    name=$1 bin=$2 root=$3 bundle=$4 out=$5
    if [ "${UNMOUNT_UNIFIED:-}" = 1 ]; then
        umount /sys/fs/cgroup/unified
    fi
    us() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
    for i in 1 2; do "$bin" --root "$root" run -b "$bundle" "warm$i" >/dev/null; done
    for ((i = 0; i < runs; i++)); do
        t0=$(us); "$bin" --root "$root" run -b "$bundle" "r$i" >/dev/null; t1=$(us)
        echo $((t1 - t0)) >> "$out.run"
    done
    for ((i = 0; i < runs; i++)); do
        t0=$(us)
        "$bin" --root "$root" create -b "$bundle" "c$i" >/dev/null
        "$bin" --root "$root" start "c$i"
        "$bin" --root "$root" delete -f "c$i"
        t1=$(us)
        echo $((t1 - t0)) >> "$out.csd"
    done
    for ((i = 0; i < rss_runs; i++)); do
        /usr/bin/time -f %M -o "$out.one" "$bin" --root "$root" run -b "$bundle" "m$i" >/dev/null
        tail -1 "$out.one" >> "$out.rss"
    done
    exit 0
fi

[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing: apt-get install -y time" >&2; exit 1; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/rcontain-bench.XXXXXX)
cleanup() {
    for r in "$work"/root-*; do
        [ -d "$r" ] || continue
        for id in $(ls "$r" 2>/dev/null); do
            "${bins[${r##*/root-}]:-true}" --root "$r" delete -f "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$work"
}
declare -A bins
trap cleanup EXIT

"$repo/bundles/make-bundle.sh" "$work/bundle" true
bundle=$work/bundle

names=()
notes=()
add() { names+=("$1"); bins[$1]=$2; }
rc_bin=${1:-$repo/target/release/rcontain}
if [ -x "$rc_bin" ]; then add rcontain "$rc_bin"; else notes+=("rcontain: $rc_bin not built, skipped"); fi
command -v runc >/dev/null && add runc "$(command -v runc)"
command -v crun >/dev/null && add crun "$(command -v crun)"

# runc and crun place every container in cgroups; if rcontain does not
# (cgroups not wired in yet), its numbers leave that cost out: say so.
if [ -n "${bins[rcontain]:-}" ]; then
    mkdir -p "$work/probe-rc"
    probe_id=rcbench-cgprobe-$$
    "${bins[rcontain]}" --root "$work/probe-rc" create -b "$bundle" "$probe_id" >/dev/null 2>&1 || true
    if [ -z "$(find /sys/fs/cgroup -maxdepth 4 -type d -name "*$probe_id*" 2>/dev/null | head -1)" ]; then
        notes+=("rcontain: created no cgroup for its container while runc and crun do: its latencies leave out that cost")
    fi
    "${bins[rcontain]}" --root "$work/probe-rc" delete -f "$probe_id" >/dev/null 2>&1 || true
fi

# crun 1.8 refuses hybrid cgroup hosts with controllers left in cgroup2 (as
# here, hugetlb); .ci/run mounts hugetlb v1 instead. When crun still fails,
# measure it inside a private mount namespace without the cgroup2 mount (the
# host is untouched; no per-run overhead since the whole loop runs there).
declare -A needs_ns
if [ -n "${bins[crun]:-}" ]; then
    mkdir -p "$work/probe-root"
    if ! crun --root "$work/probe-root" run -b "$bundle" probe >/dev/null 2>&1; then
        needs_ns[crun]=1
        notes+=("crun: measured in a private mount namespace without /sys/fs/cgroup/unified (crun 1.8 rejects this hybrid host otherwise)")
    fi
fi

# Rounds alternate between the runtimes so that load from other processes
# on the machine spreads over all of them instead of biasing one.
rounds=${BENCH_ROUNDS:-10}
per_round=$(( (runs + rounds - 1) / rounds ))
rss_per_round=$(( (rss_runs + rounds - 1) / rounds ))
for ((r = 1; r <= rounds; r++)); do
    for n in "${names[@]}"; do
        root=$work/root-$n
        mkdir -p "$root"
        echo "bench: round $r/$rounds: $n" >&2
        if [ -n "${needs_ns[$n]:-}" ]; then
            UNMOUNT_UNIFIED=1 BENCH_RUNS=$per_round BENCH_RSS_RUNS=$rss_per_round \
                unshare -m --propagation private \
                "$0" --measure "$n" "${bins[$n]}" "$root" "$bundle" "$work/res-$n"
        else
            BENCH_RUNS=$per_round BENCH_RSS_RUNS=$rss_per_round \
                "$0" --measure "$n" "${bins[$n]}" "$root" "$bundle" "$work/res-$n"
        fi
    done
done
runs=$((per_round * rounds)); rss_runs=$((rss_per_round * rounds))


stats() { # reads microseconds, one per line; prints "median min p90" in ms
    sort -n | awk '{v[NR]=$1} END {
        m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2;
        p = v[int(NR*0.9 + 0.999999)];
        printf "%.2f %.2f %.2f\n", m/1000, v[1]/1000, p/1000 }'
}
results=()
for n in "${names[@]}"; do
    f=$work/res-$n
    size=$(stat -L -c %s "${bins[$n]}")
    rss=$(sort -n "$f.rss" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    results+=("$n $(stats < "$f.run") $(stats < "$f.csd") $rss $size")
done

# name run_med run_min run_p90 csd_med csd_min csd_p90 rss_kb size
lookup() { local r; for r in "${results[@]}"; do [ "${r%% *}" = "$1" ] && echo "$r"; done; return 0; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
ref_runc=$(lookup runc); ref_crun=$(lookup crun)

table() {
    echo "| runtime | run median ms | run min ms | run p90 ms | create+start+delete median ms | c+s+d min ms | c+s+d p90 ms | peak RSS KiB | binary bytes | run vs runc | run vs crun | RSS vs crun |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "${results[@]}"; do
        set -- $r
        vr="-"; vc="-"; rc="-"
        [ -n "$ref_runc" ] && vr=$(ratio "$2" "$(echo "$ref_runc" | cut -d' ' -f2)")
        [ -n "$ref_crun" ] && vc=$(ratio "$2" "$(echo "$ref_crun" | cut -d' ' -f2)")
        [ -n "$ref_crun" ] && rc=$(ratio "$8" "$(echo "$ref_crun" | cut -d' ' -f8)")
        echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 | $8 | $9 | $vr | $vc | $rc |"
    done
}

versions() {
    for n in "${names[@]}"; do
        echo "- $n: $("${bins[$n]}" --version 2>/dev/null | head -1) (${bins[$n]})"
    done
}

tbl=$(table)
echo
echo "$tbl"
for note in "${notes[@]}"; do echo "note: $note"; done

mkdir -p "$(dirname "$doc")"
{
    echo "# Benchmarks"
    echo
    echo "Generated by \`make bench\` (bench/bench.sh) on $(date -u +%Y-%m-%dT%H:%MZ)."
    echo "Bundle: bundles/make-bundle.sh with args \`true\` (busybox-static), the"
    echo "template config (5 namespaces, read-only root, masked/readonly paths)."
    echo "Each runtime has its own \`--root\` temp dir. Latencies are wall-clock"
    echo "per command measured in bash with \$EPOCHREALTIME over $runs runs, in"
    echo "$rounds rounds alternating between the runtimes (2 warm-ups each); create+start+delete is \`create\`, \`start\`, \`delete -f\` in"
    echo "sequence. Peak RSS is GNU time's maximum resident set size of the"
    echo "runtime process for \`run\` (median of $rss_runs runs)."
    echo
    echo "$tbl"
    echo
    for note in "${notes[@]}"; do echo "Note: $note"; echo; done
    echo "## Machine"
    echo
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), nproc $(nproc)"
    echo "- load average when the run started: $load (the machine is shared with other builds; expect noise)"
    echo "- kernel: $(uname -r)"
    echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- cgroups: $( [ -d /sys/fs/cgroup/unified ] && echo hybrid || stat -fc %T /sys/fs/cgroup)"
    versions
    echo
    echo "## Command"
    echo
    echo '```'
    echo "make bench            # = bench/bench.sh target/release/rcontain"
    echo "BENCH_RUNS=$runs BENCH_RSS_RUNS=$rss_runs bench/bench.sh ${rc_bin}"
    echo '```'
} > "$doc"
echo "wrote $doc" >&2
