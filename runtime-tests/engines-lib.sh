# runtime-tests/engines-lib.sh: sourced by engines.sh, probe-engines.sh,
# cri-handler.sh and bench/engines.sh, which set TOP (the repository) first.
#
# pass/fail print the PASS/FAIL lines engines.sh collects; FAILS counts the
# failures, `finish` turns them into the RESULT line and the exit status.

FAILS=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
finish() {
    if [ "$FAILS" -gt 0 ]; then echo "RESULT: FAIL ($FAILS failed)"; exit 1; fi
    echo "RESULT: PASS"
}

# The project's shared client scripts live in shared/clients beside the
# repository: beside this clone (CI: a fresh clone with shared/ next to it)
# or beside the main checkout when this is a git worktree. $CLIENTS wins.
# Prints the directory, or nothing when there is none.
find_clients() {
    [ -n "${CLIENTS:-}" ] && { echo "$CLIENTS"; return; }
    local d
    for d in "$TOP/../shared/clients" \
        "$(git -C "$TOP" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)/../../shared/clients"; do
        [ -x "$d/containerd.sh" ] && { (cd "$d" && pwd); return; }
    done
}

# Sets IMG to the busybox test image: $BUSYBOX_IMAGE_DIR (engines.sh builds
# it once for all scripts), else one made in $W by make-busybox-image.sh;
# a FAIL and exit when that cannot be done.
busybox_image() {
    IMG=${BUSYBOX_IMAGE_DIR:-}
    [ -n "$IMG" ] && return
    local clients
    clients=$(find_clients)
    [ -x "$clients/make-busybox-image.sh" ] ||
        { fail "shared/clients/make-busybox-image.sh not found beside the repository (set CLIENTS or BUSYBOX_IMAGE_DIR)"; exit 1; }
    IMG=$W/image
    "$clients/make-busybox-image.sh" "$IMG" >"$W/make-image.log" 2>&1 ||
        { fail "make-busybox-image.sh: $(tail -2 "$W/make-image.log")"; exit 1; }
}

# Whether /run/containerd was there when the script started (it sources
# this first), so that `remove_leftovers` only removes what the run made.
RUN_CTD_EXISTED=0
[ -e /run/containerd ] && RUN_CTD_EXISTED=1

# For a cleanup trap, once the engines are stopped: every process with "$W/"
# in its argv (shims, containers), every process in the cgroup $CG, every
# mount under $W is a FAIL, then killed or unmounted; the cgroups $CG and
# an empty /run/containerd this run created are removed.
remove_leftovers() {
    local p f m mnts
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = $$ ] && continue
        if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "$W/"; then
            fail "leftover process $p: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | cut -c1-100)"
            kill -KILL "$p" 2>/dev/null
        fi
    done
    for f in /sys/fs/cgroup/*/"$CG"/*/cgroup.procs; do
        [ -f "$f" ] && for p in $(cat "$f"); do kill -KILL "$p" 2>/dev/null; done
    done
    sleep 0.2
    mnts=$(awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    if [ -n "$mnts" ]; then
        fail "mounts left under $W: $(echo $mnts | cut -c1-200)"
        for m in $mnts; do umount -l "$m" 2>/dev/null; done
    fi
    find /sys/fs/cgroup/*/"$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
    if [ $RUN_CTD_EXISTED = 0 ]; then
        rmdir /run/containerd/s /run/containerd/fifo /run/containerd/runc 2>/dev/null
        rmdir /run/containerd 2>/dev/null
    fi
}

# Stops the process $1 (if any): TERM, up to 30 s to exit, then KILL.
stop_pid() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1"
    for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# Starts a private containerd (root, state, sockets under $W, no CRI) as
# CTD_PID, its socket $W/ctd.sock, and imports $IMG/oci.tar into it; fails
# when the import does.
start_containerd() {
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
    for _ in $(seq 100); do ctr --address "$W/ctd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
    ctr --address "$W/ctd.sock" images import "$IMG/oci.tar" >/dev/null 2>&1
}
