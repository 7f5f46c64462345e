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
RUN_CTD_EXISTED=0; [ -e /run/containerd ] && RUN_CTD_EXISTED=1
HAD_RUNCTRS=0; [ -e /run/containers ] && HAD_RUNCTRS=1
HAD_VARLIB=0; [ -e /var/lib/containers ] && HAD_VARLIB=1
CTD_PID=
cleanup() {
    set +e
    if [ -n "$CTD_PID" ]; then
        kill -TERM "$CTD_PID"
        for _ in $(seq 100); do kill -0 "$CTD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CTD_PID" 2>/dev/null; wait "$CTD_PID" 2>/dev/null
    fi
    [ -f "$W/containers.conf" ] && CONTAINERS_CONF=$W/containers.conf timeout 30 "${P[@]}" rm -a -f -t 0 >/dev/null 2>&1
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = $$ ] && continue
        tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "$W/" && kill -KILL "$p" 2>/dev/null
    done
    sleep 0.2
    for m in $(awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
    find /sys/fs/cgroup/*/"$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ $RUN_CTD_EXISTED = 0 ] && { rmdir /run/containerd/s /run/containerd/fifo /run/containerd/runc 2>/dev/null; rmdir /run/containerd 2>/dev/null; }
    [ $HAD_RUNCTRS = 0 ] && rm -rf /run/containers
    [ $HAD_VARLIB = 0 ] && rm -rf /var/lib/containers
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

IMG=${BUSYBOX_IMAGE_DIR:-}
if [ -z "$IMG" ]; then
    clients=${CLIENTS:-$TOP/../shared/clients}
    [ -x "$clients/make-busybox-image.sh" ] ||
        clients=$(git -C "$TOP" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)/../../shared/clients
    [ -x "$clients/make-busybox-image.sh" ] || { echo "bench/engines.sh: shared/clients/make-busybox-image.sh not found (set CLIENTS or BUSYBOX_IMAGE_DIR)" >&2; exit 2; }
    IMG=$W/image
    "$clients/make-busybox-image.sh" "$IMG" >"$W/make-image.log" 2>&1 || { echo "make-busybox-image.sh failed" >&2; exit 1; }
fi
NAME=$(cat "$IMG/IMAGE_NAME")

cat >"$W/ctd.toml" <<EOF
version = 2
root = "$W/ctd-root"
state = "$W/ctd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/ctd.sock"
[ttrpc]
  address = "$W/ctd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/ctd-opt"
EOF
containerd --config "$W/ctd.toml" >"$W/containerd.log" 2>&1 &
CTD_PID=$!
C=(ctr --address "$W/ctd.sock")
for _ in $(seq 100); do "${C[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
"${C[@]}" images import "$IMG/oci.tar" >/dev/null 2>&1 || { echo "ctr images import failed" >&2; exit 1; }
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
