#!/usr/bin/env bash
# bench/engines.sh [RUNTIME...]
#
# Speed through an engine: wall time of `ctr run --rm IMAGE ID /bin/true`
# (containerd 1.6 -> containerd-shim-runc-v2 -> the runtime's create, start,
# state, kill, delete) for each runtime, runs interleaved so that machine
# noise hits all alike; prints min/median/max per runtime. With
# PODMAN=1 also `podman run --rm --network none IMAGE /bin/true`.
# Default runtimes: target/release/rcontain, runc, crun.
#
# Env: RUNS=25 (per runtime, >= 20), PODMAN=0|1, BUSYBOX_IMAGE_DIR, CLIENTS.
# Private containerd/podman state under a temp dir, removed at exit.
set -u
export LC_ALL=C

TOP=$(cd "$(dirname "$0")/.." && pwd)
# Sourced first: it notes whether /run/containerd was there before.
. "$TOP/runtime-tests/engines-lib.sh"
RUNS=${RUNS:-25}
[ "$RUNS" -ge 20 ] || { echo "bench/engines.sh: RUNS must be >= 20" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench/engines.sh: must run as root" >&2; exit 2; }
[ $# -gt 0 ] || set -- "$TOP/target/release/rcontain" "$(command -v runc)" "$(command -v crun)"
RTS=()
for r in "$@"; do
    case $r in /*) ;; *) r=$PWD/$r ;; esac
    [ -x "$r" ] || { echo "bench/engines.sh: runtime $r is not executable" >&2; exit 2; }
    RTS+=("$r")
done
for c in containerd ctr jq; do command -v $c >/dev/null || apt-get install -y -q containerd jq >/dev/null 2>&1; done
[ "${PODMAN:-0}" = 1 ] && { command -v podman >/dev/null || apt-get install -y -q podman conmon >/dev/null 2>&1; }

W=$(mktemp -d /tmp/rcontain-bench-engines.XXXXXX)
CG=rcontain-bench-$$
HAD_RUNCTRS=0; [ -e /run/containers ] && HAD_RUNCTRS=1
HAD_VARLIB=0; [ -e /var/lib/containers ] && HAD_VARLIB=1
CTD_PID=
cleanup() {
    set +e
    stop_pid "$CTD_PID"
    [ -f "$W/containers.conf" ] && CONTAINERS_CONF=$W/containers.conf timeout 30 "${P[@]}" rm -a -f -t 0 >/dev/null 2>&1
    remove_leftovers
    [ $HAD_RUNCTRS = 0 ] && rm -rf /run/containers
    [ $HAD_VARLIB = 0 ] && rm -rf /var/lib/containers
    rm -rf "$W"
    # A leftover is a FAIL line: the numbers may be off, say so.
    [ "$FAILS" = 0 ] || exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busybox_image
NAME=$(cat "$IMG/IMAGE_NAME")
start_containerd || { echo "ctr images import failed" >&2; exit 1; }
C=(ctr --address "$W/ctd.sock")
mkdir -p "$W/fifo"

P=(podman --root "$W/pm-storage" --runroot "$W/pm-run" --tmpdir "$W/pm-libpod" --storage-driver overlay
   --volumepath "$W/pm-volumes" --network-config-dir "$W/pm-net" --cgroup-manager cgroupfs --events-backend file)
if [ "${PODMAN:-0}" = 1 ]; then
    n=$(ulimit -Hn); [ "$n" = unlimited ] || [ "$n" -gt 1048576 ] && n=1048576
    u=$(ulimit -Hu); [ "$u" = unlimited ] || [ "$u" -gt 32768 ] && u=32768
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
        "$n" "$n" "$u" "$u" >"$W/containers.conf"
    mkdir -p "$W/tmp"
    export CONTAINERS_CONF=$W/containers.conf TMPDIR=$W/tmp
    "${P[@]}" import --change 'CMD ["sh"]' "$IMG/rootfs.tar" "$NAME" >/dev/null 2>&1 || { echo "podman import failed" >&2; exit 1; }
fi

now() { date +%s%N; }
declare -A T
one() { # ENGINE INDEX RUNTIME I -> appends ms to T[ENGINE-INDEX]
    local t0 t1 rc
    t0=$(now)
    case $1 in
    ctr) "${C[@]}" run --rm --runc-binary "$3" --runc-root "$W/rt-root-$2" --fifo-dir "$W/fifo" \
            --cgroup "/$CG/b$2-$4" "$NAME" "b$2-$4" /bin/true </dev/null >/dev/null 2>"$W/err"; rc=$? ;;
    podman) "${P[@]}" --runtime "$3" run --rm --network none --cgroup-parent "/$CG" "$NAME" /bin/true \
            </dev/null >/dev/null 2>"$W/err"; rc=$? ;;
    esac
    t1=$(now)
    [ $rc = 0 ] || { echo "bench/engines.sh: $1 run with $3 failed: $(tail -2 "$W/err")" >&2; exit 1; }
    [ "$4" = warm ] || T[$1-$2]+="$(((t1 - t0) / 1000)) "
}

ENGINES=(ctr); [ "${PODMAN:-0}" = 1 ] && ENGINES+=(podman)
for e in "${ENGINES[@]}"; do
    for k in "${!RTS[@]}"; do one "$e" "$k" "${RTS[$k]}" warm; done   # caches, first-run costs
    for i in $(seq "$RUNS"); do
        for k in "${!RTS[@]}"; do one "$e" "$k" "${RTS[$k]}" "$i"; done
    done
done

stats() { # microsecond samples -> "min median max" in ms
    tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.1f %.1f %.1f", a[1] / 1000, m / 1000, a[NR] / 1000 }'
}
echo "engine run of /bin/true, wall ms over $RUNS runs each (interleaved)"
printf '%-8s %-44s %8s %8s %8s\n' engine runtime min median max
for e in "${ENGINES[@]}"; do
    for k in "${!RTS[@]}"; do
        read -r mn md mx <<<"$(printf '%s' "${T[$e-$k]}" | stats)"
        printf '%-8s %-44s %8s %8s %8s\n' "$e" "${RTS[$k]}" "$mn" "$md" "$mx"
    done
done
