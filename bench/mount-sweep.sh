#!/bin/bash
# Start latency against the size of the host's mount table, and under
# parallel starts: rcontain, crun and runc in the same run.
#
#   bench/mount-sweep.sh [RCONTAIN_BIN]     (as root; `make bench` calls it)
#
# For each count of extra mounts in SWEEP_MOUNTS (default "0 1000 3000")
# the script enters a private mount namespace of its own (`unshare -m
# --propagation private`: nothing is ever mounted in the host's namespace)
# and mounts that many small tmpfs there, on distinct directories, as a
# node carrying many pods' volumes has them. Inside it, for each
# parallelism P in SWEEP_PARALLEL (default "1 4 16"), each runtime `run`s
# /bin/true from the same busybox bundle SWEEP_RUNS times (default 64)
# with P of those runs going on at once (P workers, each starting its
# runs one after the other), in SWEEP_ROUNDS rounds (default 4) that
# alternate between the runtimes, their order rotating each round.
# Reported per (mounts, P, runtime): median and p90 wall-clock latency of
# one `run`, starts per second (runs / wall-clock time of the batches), and
# CPU time per run (user + sys of the runtime and all it waited for, its
# init and the container's `true`, from bash's `times`): on a loaded
# machine wall-clock time is mostly waiting for a CPU, CPU time much less.
#
# SWEEP_EXTRA="name=/path/to/runtime ..." adds runtimes (e.g. another build
# of rcontain) to the comparison; `make bench` adds floor=bench/floor.sh,
# the floor of a start (unshare of the same namespaces, chroot, exec).
#
# Writes its section of docs/benchmarks.md (BENCH_DOC to override; between
# the mount-sweep markers, replaced in place, else appended; bench.sh keeps
# it when it rewrites the file) and the plot docs/benchmarks-mounts.png
# (SWEEP_PLOT to override) of median latency against extra mounts, one
# panel per parallelism. The plot needs python3 with matplotlib (Debian:
# apt-get install python3-matplotlib); without it the table is written and
# the plot skipped, with a note. Nothing is installed by this script.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/child-cpu.sh
. "$here/child-cpu.sh"
repo=$(cd "$here/.." && pwd)
mounts_list=${SWEEP_MOUNTS:-0 1000 3000}
par_list=${SWEEP_PARALLEL:-1 4 16}
runs=${SWEEP_RUNS:-64}
rounds=${SWEEP_ROUNDS:-4}
doc=${BENCH_DOC:-$repo/docs/benchmarks.md}
plot=${SWEEP_PLOT:-$repo/docs/benchmarks-mounts.png}

# --- one batch: P workers, each `run`ning K containers in sequence ---------
# Called as a subprocess so that a runtime needing a nested namespace (crun,
# see below) gets one per batch, not per run.
if [ "${1:-}" = --batch ]; then
    shift
    name=$1 bin=$2 root=$3 bundle=$4 par=$5 per=$6 out=$7 tag=$8
    if [ "${UNMOUNT_UNIFIED:-}" = 1 ]; then
        umount /sys/fs/cgroup/unified
    fi
    worker() {
        local w=$1 i t0 t1
        for ((i = 0; i < per; i++)); do
            t0=${EPOCHREALTIME/./}
            if "$bin" --root "$root" run -b "$bundle" "$tag-$w-$i" >/dev/null 2>>"$out.err"; then
                t1=${EPOCHREALTIME/./}
                echo $((t1 - t0)) >> "$out.lat.$w"
            else
                echo "$tag-$w-$i" >> "$out.fail"
            fi
        done
    }
    child_cpu "$out.times"; c0=$REPLY
    b0=${EPOCHREALTIME/./}
    for ((w = 0; w < par; w++)); do worker "$w" & done
    wait
    b1=${EPOCHREALTIME/./}
    child_cpu "$out.times"
    cat "$out".lat.* >> "$out.lat" 2>/dev/null || true
    rm -f "$out".lat.*
    echo "$((par * per)) $((b1 - b0)) $((REPLY - c0))" >> "$out.tp"
    exit 0
fi

# --- one mount count, inside the private namespace --------------------------
if [ "${1:-}" = --inside ]; then
    shift
    count=$1 work=$2 bundle=$3
    shift 3
    # Still in the namespace unshare made? Mounting in the host's would be
    # a disaster: refuse unless ours differs from PID 1's.
    if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
        echo "mount-sweep: not in a private mount namespace, refusing to mount" >&2
        exit 1
    fi
    mkdir -p "$work/mnt-$count"
    for ((i = 0; i < count; i++)); do
        mkdir "$work/mnt-$count/$i"
        mount -t tmpfs -o size=16k sweep "$work/mnt-$count/$i"
    done
    wc -l < /proc/self/mountinfo > "$work/table-$count"
    declare -A bins nested
    names=()
    while [ $# -gt 0 ]; do
        names+=("$1"); bins[$1]=$2; nested[$1]=$3
        shift 3
    done
    rt() { # rt NAME ARGS...: the runtime NAME with its root (nested as the batches)
        local n=$1; shift
        if [ "${nested[$n]}" = 1 ]; then
            unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "$@"' \
                sh "${bins[$n]}" --root "$work/root-$n" "$@"
        else
            "${bins[$n]}" --root "$work/root-$n" "$@"
        fi
    }
    # A node runs containers: one idle container per runtime lives through
    # the batches, as on a real node (rcontain keeps its mount namespace
    # template while any container of its root lives).
    for n in "${names[@]}"; do
        rt "$n" run -d -b "$work/idle" "idle-$count" >/dev/null 2>>"$work/idle.err" ||
            echo "mount-sweep: $n: the idle container did not start" >&2
    done
    per_batch=$(( (runs + rounds - 1) / rounds ))
    for ((r = 0; r < rounds; r++)); do
        for par in $par_list; do
            per=$(( (per_batch + par - 1) / par ))
            n_rt=${#names[@]}
            for ((k = 0; k < n_rt; k++)); do
                n=${names[$(( (k + r) % n_rt ))]}
                echo "mount-sweep: $count mounts, round $((r + 1))/$rounds, $par parallel: $n" >&2
                set -- "$0" --batch "$n" "${bins[$n]}" "$work/root-$n" "$bundle" "$par" "$per" \
                    "$work/res-$count-$par-$n" "s$count-$par-$r"
                if [ "${nested[$n]}" = 1 ]; then
                    UNMOUNT_UNIFIED=1 unshare -m --propagation private "$@"
                else
                    "$@"
                fi
            done
        done
    done
    for n in "${names[@]}"; do rt "$n" delete -f "idle-$count" >/dev/null 2>&1 || true; done
    exit 0
fi

[ "$(id -u)" = 0 ] || { echo "mount-sweep: run as root" >&2; exit 1; }
command -v unshare >/dev/null || { echo "mount-sweep: unshare (util-linux) missing" >&2; exit 1; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/rcontain-sweep.XXXXXX)
declare -A bins nested
names=()
notes=()
cleanup() {
    local n id
    for n in "${names[@]}"; do
        for id in $(ls "$work/root-$n" 2>/dev/null); do
            "${bins[$n]}" --root "$work/root-$n" delete -f "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT

"$repo/bundles/make-bundle.sh" "$work/bundle" true >/dev/null
"$repo/bundles/make-bundle.sh" "$work/idle" sleep 1000000 >/dev/null
bundle=$work/bundle

add() { names+=("$1"); bins[$1]=$2; nested[$1]=0; mkdir -p "$work/root-$1"; }
rc_bin=${1:-$repo/target/release/rcontain}
if [ -x "$rc_bin" ]; then add rcontain "$rc_bin"; else notes+=("rcontain: $rc_bin not built, skipped"); fi
command -v crun >/dev/null && add crun "$(command -v crun)"
command -v runc >/dev/null && add runc "$(command -v runc)"
# More runtimes to compare, e.g. another build: SWEEP_EXTRA="name=/path/bin ...".
for extra in ${SWEEP_EXTRA:-}; do add "${extra%%=*}" "${extra#*=}"; done

# As in bench.sh: crun 1.8 refuses hybrid hosts with controllers left in
# cgroup2; it then runs in a namespace nested in the sweep's, without the
# cgroup2 mount (one per batch of runs, never per run).
if [ -n "${bins[crun]:-}" ] && ! crun --root "$work/root-crun" run -b "$bundle" probe >/dev/null 2>&1; then
    crun --root "$work/root-crun" delete -f probe >/dev/null 2>&1 || true
    nested[crun]=1
    notes+=("crun: run in a nested private mount namespace without /sys/fs/cgroup/unified (crun 1.8 rejects this hybrid host otherwise)")
fi

rt_args=()
for n in "${names[@]}"; do rt_args+=("$n" "${bins[$n]}" "${nested[$n]}"); done
for count in $mounts_list; do
    SWEEP_RUNS=$runs SWEEP_ROUNDS=$rounds SWEEP_PARALLEL=$par_list \
        unshare -m --propagation private "$0" --inside "$count" "$work" "$bundle" "${rt_args[@]}"
done

# --- results -----------------------------------------------------------------
stats() { # microseconds, one per line -> "median p90" in ms
    sort -n | awk '{v[NR]=$1} END {
        if (NR == 0) { print "- -"; exit }
        m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2;
        printf "%.2f %.2f\n", m/1000, v[int(NR*0.9 + 0.999999)]/1000 }'
}
rate() { awk '{ n += $1; t += $2 } END { if (t > 0) printf "%.1f", n / (t / 1e6); else print "-" }' "$1"; }
cpu() { awk '{ n += $1; c += $3 } END { if (n > 0) printf "%.2f", c / n; else print "-" }' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }

# one TSV line per (mounts, P, runtime): mounts par name median p90 starts/s cpu
tsv=$work/sweep.tsv
: > "$tsv"
failed=0
for count in $mounts_list; do
    for par in $par_list; do
        for n in "${names[@]}"; do
            f=$work/res-$count-$par-$n
            read -r med p90 < <(stats < "$f.lat" 2>/dev/null || echo "- -")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$count" "$par" "$n" "$med" "$p90" \
                "$(rate "$f.tp")" "$(cpu "$f.tp")" >> "$tsv"
            if [ -s "$f.fail" ]; then
                failed=1
                notes+=("$n: $(wc -l < "$f.fail") of the runs with $count mounts and $par parallel failed: $(sort -u "$f.err" | head -3 | tr '\n' ' ')")
            fi
        done
    done
done
get() { awk -F'\t' -v c="$1" -v p="$2" -v n="$3" -v k="$4" '$1 == c && $2 == p && $3 == n { print $k }' "$tsv"; }
have() { [ -n "${bins[$1]:-}" ]; }

# table TITLE COLUMN... : one row per (mounts, P), per runtime the TSV
# columns given (4 median, 5 p90, 6 starts/s, 7 CPU), then rcontain's
# ratio to crun and runc of the first one.
table() {
    local title=$1 n k count par
    shift
    local h1="| extra host mounts (lines in mountinfo) | parallel starts |" h2="|---|---|"
    for n in "${names[@]}"; do
        for k in "$@"; do h1+=" $n ${title_of[$k]} |"; h2+="---|"; done
    done
    have crun && { h1+=" rcontain / crun |"; h2+="---|"; }
    have runc && { h1+=" rcontain / runc |"; h2+="---|"; }
    echo "$h1"; echo "$h2"
    for count in $mounts_list; do
        for par in $par_list; do
            local row="| $count ($(cat "$work/table-$count")) | $par |" rc
            for n in "${names[@]}"; do
                for k in "$@"; do row+=" $(get "$count" "$par" "$n" "$k") |"; done
            done
            rc=$(get "$count" "$par" rcontain "$1")
            have crun && row+=" $(ratio "${rc:--}" "$(get "$count" "$par" crun "$1")") |"
            have runc && row+=" $(ratio "${rc:--}" "$(get "$count" "$par" runc "$1")") |"
            echo "$row"
        done
    done
}
declare -A title_of=([4]="median ms" [5]="p90 ms" [6]="starts/s" [7]="CPU ms/run")

# Least-squares slope of column $1 (4 median, 7 CPU) against the mount
# count, in ms per 1000 mounts, per runtime and parallelism.
slopes() {
    local par n
    for par in $par_list; do
        local line="- $par parallel:"
        for n in "${names[@]}"; do
            line+=" $n $(awk -F'\t' -v p="$par" -v n="$n" -v k="$1" '$2 == p && $3 == n && $k != "-" {
                    x = $1 / 1000; y = $k; c++; sx += x; sy += y; sxx += x * x; sxy += x * y }
                END { d = c * sxx - sx * sx; if (c > 1 && d > 0) printf "%.2f", (c * sxy - sx * sy) / d; else printf "-" }' "$tsv"),"
        done
        echo "${line%,}"
    done
}

plot_note=
# The first python3 with matplotlib: the one on PATH may be a separate
# install (pyenv, venv) without the distribution's packages.
py=
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import matplotlib' 2>/dev/null; then py=$p; break; fi
done
if [ -n "$py" ]; then
    mkdir -p "$(dirname "$plot")"
    "$py" - "$tsv" "$plot" <<'PY'
import sys, collections
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
tsv, out = sys.argv[1], sys.argv[2]
# (row, par, runtime) -> [(mounts, value)]; row 0 median latency, row 1 CPU
data = collections.defaultdict(list)
pars = []
for line in open(tsv):
    mounts, par, name, med, _p90, _rate, cpu = line.rstrip("\n").split("\t")
    for row, v in ((0, med), (1, cpu)):
        if v != "-":
            data[(row, int(par), name)].append((int(mounts), float(v)))
    if int(par) not in pars:
        pars.append(int(par))
labels = ("median latency of one run (ms)", "CPU time per run (ms)")
fig, axes = plt.subplots(2, len(pars), figsize=(4.2 * len(pars), 7), squeeze=False)
for row in (0, 1):
    for ax, par in zip(axes[row], pars):
        for (r, p, name), pts in sorted(data.items()):
            if r != row or p != par:
                continue
            pts.sort()
            ax.plot([m for m, _ in pts], [v for _, v in pts], marker="o", label=name)
        ax.set_title(f"{par} parallel start{'s' if par > 1 else ''}")
        ax.set_xlabel("extra host mounts")
        ax.set_ylabel(labels[row])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
fig.suptitle("run of /bin/true against the host's mount table")
fig.tight_layout()
fig.savefig(out, dpi=90)
PY
else
    plot_note="The plot was not made: python3 with matplotlib is missing (apt-get install python3-matplotlib)."
fi

tbl=$(table latency 4 5)
tbl2=$(table cpu 7 6)
echo
echo "$tbl"
echo
echo "$tbl2"
echo
slopes 4
slopes 7
for note in "${notes[@]}"; do echo "note: $note"; done

section() {
    echo "<!-- mount-sweep begin: written by bench/mount-sweep.sh -->"
    echo "## Start latency against the host's mount table"
    echo
    echo "Generated by \`make bench\` (bench/mount-sweep.sh) on $(date -u +%Y-%m-%dT%H:%MZ)."
    echo "For each count of extra mounts, a private mount namespace of the"
    echo "benchmark (\`unshare -m --propagation private\`; the host's own table"
    echo "is never touched) gets that many 16 KiB tmpfs mounts on distinct"
    echo "directories; in it each runtime \`run\`s /bin/true from the same busybox"
    echo "bundle at least $runs times per line (each of the $rounds batches rounded"
    echo "up to a multiple of the parallelism), with that many runs going on at"
    echo "once (workers starting their runs one after the other), in $rounds rounds"
    echo "alternating between the runtimes. Latency is the wall-clock time of one"
    echo "\`run\` command; ratios divide medians measured in the same run of this"
    echo "script."
    echo
    echo "$tbl"
    echo
    echo "CPU time per run is the user + sys time of the runtime and everything"
    echo "it waited for (its init, the container's \`true\`), from bash's \`times\`"
    echo "around each batch, divided by its runs: on a loaded machine wall-clock"
    echo "time is mostly waiting for a CPU, CPU time much less so. Starts/s is the"
    echo "number of runs over the wall-clock time of their batches; the ratios are"
    echo "of CPU time."
    echo
    echo "$tbl2"
    echo
    echo "Growth per 1000 extra mounts (least-squares slope over the counts), ms"
    echo "of median latency:"
    echo
    slopes 4
    echo
    echo "ms of CPU time per run:"
    echo
    slopes 7
    echo
    if [ -n "$plot_note" ]; then
        echo "$plot_note"
    else
        echo "![median latency and CPU time of a run against extra host mounts]($(basename "$plot"))"
    fi
    echo
    for note in "${notes[@]}"; do echo "Note: $note"; echo; done
    echo "Load average when the sweep started: $load, nproc $(nproc) (the machine"
    echo "is shared with other work; expect noise, compare ratios within a line)."
    echo "Kernel $(uname -r)."
    echo
    echo '```'
    echo "SWEEP_MOUNTS=\"$mounts_list\" SWEEP_PARALLEL=\"$par_list\" SWEEP_RUNS=$runs SWEEP_ROUNDS=$rounds \\"
    [ -z "${SWEEP_EXTRA:-}" ] || echo "    SWEEP_EXTRA=\"$SWEEP_EXTRA\" \\"
    echo "    bench/mount-sweep.sh ${rc_bin#"$repo"/}"
    echo '```'
    echo "<!-- mount-sweep end -->"
}

new=$(section)
mkdir -p "$(dirname "$doc")"
if [ -f "$doc" ] && grep -q '^<!-- mount-sweep begin' "$doc"; then
    # ENVIRON, not -v: -v would interpret the backslashes in the text
    NEW=$new awk '
        /^<!-- mount-sweep begin/ { print ENVIRON["NEW"]; skip = 1; next }
        /^<!-- mount-sweep end/ { skip = 0; next }
        !skip' "$doc" > "$doc.tmp"
    mv "$doc.tmp" "$doc"
else
    { [ -s "$doc" ] && echo; echo "$new"; } >> "$doc"
fi
if [ -n "$plot_note" ]; then echo "wrote $doc (no plot)" >&2; else echo "wrote $doc and $plot" >&2; fi
exit "$failed"
