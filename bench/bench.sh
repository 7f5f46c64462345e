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
#
# A second bundle, identical but for linux.resources (memory limit, cpu
# shares/quota/period, pids limit), is `run` as often, each of its runs
# paired with one of the plain bundle (order alternating): the median of
# the paired differences (and the difference of the medians) is what
# setting those limits costs each runtime (its cgroup setup beyond the
# empty cgroups every runtime makes anyway), shown next to crun's in a
# second table, with the mean CPU time (user + sys of the runtime and all
# it waited for) of both kinds of run, which load from other processes
# disturbs far less than wall-clock time.
# Every runtime gets its own --root temp dir; everything is removed after.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/child-cpu.sh
. "$here/child-cpu.sh"
repo=$(cd "$here/.." && pwd)
runs=${BENCH_RUNS:-100}
rss_runs=${BENCH_RSS_RUNS:-20}
doc=${BENCH_DOC:-$repo/docs/benchmarks.md}

# --- one runtime, called in a subprocess (possibly in its own mount ns) ----
if [ "${1:-}" = --measure ]; then
    shift
    name=$1 bin=$2 root=$3 bundle=$4 limited=$5 out=$6
    if [ "${UNMOUNT_UNIFIED:-}" = 1 ]; then
        umount /sys/fs/cgroup/unified
    fi
    # No command substitution inside a measured window: its fork would be
    # timed, and its CPU time counted with the runtime's.
    #   wall clock: ${EPOCHREALTIME/./} is microseconds;
    #   CPU: child_cpu (bench/child-cpu.sh).
    for i in 1 2; do
        "$bin" --root "$root" run -b "$bundle" "warm$i" >/dev/null
        "$bin" --root "$root" run -b "$limited" "warml$i" >/dev/null
    done
    # plain and limited runs in pairs, the order alternating, so neither
    # always follows the other's cgroup removal
    for ((i = 0; i < runs; i++)); do
        if ((i % 2)); then kinds="lim run"; else kinds="run lim"; fi
        for kind in $kinds; do
            if [ "$kind" = run ]; then b=$bundle id=r$i; else b=$limited id=l$i; fi
            child_cpu "$out.times"; c0=$REPLY
            t0=${EPOCHREALTIME/./}
            "$bin" --root "$root" run -b "$b" "$id" >/dev/null
            t1=${EPOCHREALTIME/./}
            child_cpu "$out.times"
            echo $((t1 - t0)) >> "$out.$kind"
            echo $((REPLY - c0)) >> "$out.$kind.cpu"
        done
    done
    for ((i = 0; i < runs; i++)); do
        t0=${EPOCHREALTIME/./}
        "$bin" --root "$root" create -b "$bundle" "c$i" >/dev/null
        "$bin" --root "$root" start "c$i"
        "$bin" --root "$root" delete -f "c$i"
        t1=${EPOCHREALTIME/./}
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
# Same rootfs, same config, plus limits every runtime sets on v1 and v2.
limited=$work/bundle-limits
mkdir -p "$limited"
jq --arg root "$bundle/rootfs" '.root.path = $root | .linux.resources = {
        memory: {limit: 268435456},
        cpu: {shares: 512, quota: 50000, period: 100000},
        pids: {limit: 100}}' "$bundle/config.json" > "$limited/config.json"

names=()
notes=()
add() { names+=("$1"); bins[$1]=$2; }
rc_bin=${1:-$repo/target/release/rcontain}
# A path as the generated doc shows it: relative to the repository when
# inside it (a doc must not name one machine's checkout).
shown() { case $1 in "$repo"/*) echo "${1#"$repo"/}" ;; *) echo "$1" ;; esac; }
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
                "$0" --measure "$n" "${bins[$n]}" "$root" "$bundle" "$limited" "$work/res-$n"
        else
            BENCH_RUNS=$per_round BENCH_RSS_RUNS=$rss_per_round \
                "$0" --measure "$n" "${bins[$n]}" "$root" "$bundle" "$limited" "$work/res-$n"
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
limits=()
for n in "${names[@]}"; do
    f=$work/res-$n
    size=$(stat -L -c %s "${bins[$n]}")
    rss=$(sort -n "$f.rss" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    results+=("$n $(stats < "$f.run") $(stats < "$f.csd") $rss $size")
    # the i-th lines of .run and .lim are one back-to-back pair
    paired=$(paste "$f.run" "$f.lim" | awk '{ print $2 - $1 }' | stats | cut -d' ' -f1)
    cpu() { awk '{ s += $1 } END { printf "%.2f", s / NR }' "$1"; }
    # mean of the paired CPU differences and twice its standard error
    cpu_cost=$(paste "$f.run.cpu" "$f.lim.cpu" | awk '{ d = $2 - $1; s += d; ss += d * d }
        END { m = s / NR; v = NR > 1 ? (ss - NR * m * m) / (NR - 1) : 0;
              printf "%.2f %.2f", m, 2 * sqrt((v > 0 ? v : 0) / NR) }')
    limits+=("$n $(stats < "$f.run") $(stats < "$f.lim") $paired $(cpu "$f.run.cpu") $(cpu "$f.lim.cpu") $cpu_cost")
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

# name plain_med plain_min plain_p90 lim_med lim_min lim_p90 paired_diff_med
#      plain_cpu lim_cpu cpu_cost cpu_cost_2se
lookup_limits() { local r; for r in "${limits[@]}"; do [ "${r%% *}" = "$1" ] && echo "$r"; done; return 0; }
cost() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
# a ratio to a cost that is zero or noise-negative means nothing
ratio_pos() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
crun_wall= crun_cpu=
if [ -n "$(lookup_limits crun)" ]; then
    set -- $(lookup_limits crun)
    crun_wall=$8 crun_cpu=${11}
fi

limits_table() {
    echo "| runtime | run median ms | run with limits median ms | with limits min ms | with limits p90 ms | cgroup setup cost ms (median of paired differences) | difference of medians ms | cost vs crun | CPU ms per run | CPU ms per run with limits | cgroup setup CPU ms (± 2 SE) | CPU cost vs crun |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "${limits[@]}"; do
        set -- $r
        local vw="-" vc="-"
        [ -n "$crun_wall" ] && vw=$(ratio_pos "$8" "$crun_wall")
        [ -n "$crun_cpu" ] && vc=$(ratio_pos "${11}" "$crun_cpu")
        echo "| $1 | $2 | $5 | $6 | $7 | $8 | $(cost "$5" "$2") | $vw | $9 | ${10} | ${11} ± ${12} | $vc |"
    done
}

versions() {
    for n in "${names[@]}"; do
        echo "- $n: $("${bins[$n]}" --version 2>/dev/null | head -1) ($(shown "${bins[$n]}"))"
    done
}

tbl=$(table)
ltbl=$(limits_table)
echo
echo "$tbl"
echo
echo "$ltbl"
for note in "${notes[@]}"; do echo "note: $note"; done

mkdir -p "$(dirname "$doc")"
# bench/mount-sweep.sh's section of the doc survives this rewrite, and
# so does the hand-written analysis after it (it reads the sweep's figures).
sweep=$(sed -n '/^<!-- mount-sweep begin/,$p' "$doc" 2>/dev/null || true)
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
    echo "## Cost of resource limits"
    echo
    echo "The same bundle with \`linux.resources\` = memory limit 256 MiB, cpu"
    echo "shares 512, quota 50000 / period 100000, pids limit 100, \`run\` $runs times"
    echo "by each runtime, each run paired with one of the plain bundle (order"
    echo "alternating) in the rounds above. The cgroup setup cost is the median"
    echo "of the paired differences (limits minus no limits; pairing cancels"
    echo "slow changes of the machine's load), the difference of the medians"
    echo "next to it: what writing the limits (and whatever else a runtime does"
    echo "for them) adds to a \`run\`. \"cost vs crun\" divides the former by crun's."
    echo "Wall-clock differences this small drown in the noise of a shared"
    echo "machine; CPU time much less so: \"CPU ms per run\" is the mean user +"
    echo "sys time of the runtime and everything it waited for (its init, the"
    echo "container's \`true\`), from bash's \`times\`, and the cgroup setup CPU"
    echo "cost the mean of its paired differences with and without limits, with"
    echo "twice its standard error: costs closer than that are not told apart."
    echo
    echo "$ltbl"
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
    echo "BENCH_RUNS=$runs BENCH_RSS_RUNS=$rss_runs bench/bench.sh $(shown "$rc_bin")"
    echo '```'
    if [ -n "$sweep" ]; then echo; echo "$sweep"; fi
} > "$doc"
echo "wrote $doc" >&2
