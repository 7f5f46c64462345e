#!/usr/bin/env bash
# runtime-tests/podman-rootless.sh RUNTIME [REFERENCE]
#
# Rootless podman drives the runtime: as an ordinary user (rctest, made if
# missing, with subordinate ids; removed again if this script made it),
# `podman --runtime RUNTIME` runs the local busybox image
# (shared/clients/make-busybox-image.sh, loaded with `podman load`: no
# registry) and every check compares RUNTIME's output and exit code with
# REFERENCE's (default crun, else runc): run --rm, --userns=keep-id, exec,
# run -d / stop / rm, and a memory limit where the user's cgroups are
# delegated (cgroup v2 with a subtree the user owns; otherwise the check
# is skipped, saying why: runtime-tests/vm-rootless.sh checks it in a VM).
#
# Podman runs the runtime as root of its own user namespace; rcontain
# must take that for rootless (state in $XDG_RUNTIME_DIR/rcontain, no
# cgroup of its own without delegation, devices bound rather than made).
#
# Everything lives in a mktemp dir: HOME, XDG_RUNTIME_DIR, the storage
# (graphroot/runroot through CONTAINERS_STORAGE_CONF) and containers.conf
# (CONTAINERS_CONF), so no global or per-user podman config is read or
# written. Networking is --network none: slirp4netns needs /dev/net/tun,
# which some hosts (this one: mode 0600) do not open to users.
#
# Prints PASS/FAIL/SKIP lines and a RESULT line; exit 1 if a check failed,
# 2 if it cannot run. Env: BUSYBOX_IMAGE_DIR, CMD_TIMEOUT=60, KEEP=1.
set -u
export LC_ALL=C

RT=${1:?usage: $0 RUNTIME [REFERENCE]}
case $RT in /*) ;; *) RT=$PWD/$RT ;; esac
REF=${2:-$(command -v crun || command -v runc)}
[ -x "$RT" ] || { echo "FAIL runtime $RT is not executable"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "FAIL must run as root (it sets up the test user)"; exit 2; }
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/runtime-tests/engines-lib.sh"
TMO=${CMD_TIMEOUT:-60}
USR=rctest

for b in podman conmon setpriv newuidmap; do
    command -v $b >/dev/null || { echo "SKIP host lacks $b"; echo "RESULT: PASS"; exit 0; }
done
if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null)" = 0 ]; then
    echo "SKIP host lacks unprivileged user namespaces"; echo "RESULT: PASS"; exit 0
fi

W=$(mktemp -d /tmp/podman-rootless.XXXXXX)
chmod 755 "$W"
MADE_USER=0
cleanup() {
    set +e
    [ -n "${P:-}" ] && (cd "$W" && timeout 30 "${U[@]}" podman rm -a -f -t 0 >/dev/null 2>&1)
    # The user namespace podman keeps alive between commands.
    pause=$(cat "$W/xdg/libpod/tmp/pause.pid" 2>/dev/null)
    [ -n "$pause" ] && kill -KILL "$pause" 2>/dev/null
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = $$ ] && continue
        tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "$W/" &&
            { fail "leftover process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-100)"; kill -KILL "$p" 2>/dev/null; }
    done
    mnts=$(awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    [ -n "$mnts" ] && { fail "mounts left under $W: $(echo $mnts | cut -c1-200)"; for m in $mnts; do umount -l "$m"; done; }
    left=$(ls -A "$W/xdg/$(basename "$RT")" 2>/dev/null)
    [ -n "$left" ] && fail "runtime state left in \$XDG_RUNTIME_DIR/$(basename "$RT"): $left"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $W"; else rm -rf "$W"; fi
    if [ $MADE_USER = 1 ]; then
        usermod --del-subuids "$SUB-$((SUB + 65535))" --del-subgids "$SUB-$((SUB + 65535))" $USR 2>/dev/null
        userdel $USR 2>/dev/null
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the user, with subordinate ids ----------------------------------------------
if ! id -u $USR >/dev/null 2>&1; then
    useradd -M -U -s /bin/sh $USR || { echo "FAIL useradd $USR"; exit 2; }
    MADE_USER=1
fi
UID_=$(id -u $USR); GID_=$(id -g $USR)
if ! grep -Eq "^($USR|$UID_):" /etc/subuid || ! grep -Eq "^($USR|$UID_):" /etc/subgid; then
    SUB=$(cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: '{e = $2 + $3; if (e > m) m = e} END {print (m > 100000 ? m : 100000)}')
    usermod --add-subuids "$SUB-$((SUB + 65535))" --add-subgids "$SUB-$((SUB + 65535))" $USR ||
        { echo "FAIL usermod --add-subuids"; exit 2; }
    [ $MADE_USER = 1 ] || echo "note: gave $USR subordinate ids $SUB-$((SUB + 65535)) (kept)"
fi

# ---- a private podman setup ----------------------------------------------------------
mkdir -p "$W/home" "$W/xdg" "$W/bin"
chmod 700 "$W/xdg"
# Copies the user can execute wherever the build is (e.g. under /root).
cp "$RT" "$W/bin/$(basename "$RT")"
cp "$REF" "$W/bin/$(basename "$REF")"
RTU=$W/bin/$(basename "$RT") REFU=$W/bin/$(basename "$REF")
busybox_image
cp "$IMG/docker-archive.tar" "$W/image.tar"
NAME=$(cat "$IMG/IMAGE_NAME")
cat >"$W/containers.conf" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "$(basename "$RT")"]
EOF
cat >"$W/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$W/storage"
runroot = "$W/xdg/containers"
EOF
chown -R "$UID_:$GID_" "$W"
chown root:root "$W"

# The user's command line, with a login's environment and nothing else.
U=(setpriv --reuid="$UID_" --regid="$GID_" --init-groups -- env -i
   PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME="$W/home" USER=$USR LOGNAME=$USR
   XDG_RUNTIME_DIR="$W/xdg" CONTAINERS_CONF="$W/containers.conf"
   CONTAINERS_STORAGE_CONF="$W/storage.conf")
as_user() { (cd "$W" && exec "${U[@]}" "$@"); }
P=1

# out FILE CMD...: runs CMD as the user, output (stdout+stderr) and exit code to FILE
out() {
    local f=$1
    shift
    (cd "$W" && timeout "$TMO" "${U[@]}" "$@" >"$f" 2>&1 </dev/null)
    echo "rc=$?" >>"$f"
}
# same NAME PODMAN-ARGS...: the same podman command with each runtime
same() {
    local name=$1
    shift
    out "$W/ref.out" podman --runtime "$REFU" "$@"
    out "$W/rt.out" podman --runtime "$RTU" "$@"
    if ! grep -q '^rc=0$' "$W/ref.out" && ! grep -q "^rc=${WANT_RC:-0}$" "$W/ref.out"; then
        fail "$name: the reference $REF failed: $(tail -3 "$W/ref.out" | tr '\n' ' ' | cut -c1-300)"
    elif cmp -s "$W/ref.out" "$W/rt.out"; then
        pass "$name (as $(basename "$REF"))"
    else
        fail "$name: differs from $(basename "$REF"): $(diff "$W/ref.out" "$W/rt.out" | head -8 | tr '\n' ' ' | cut -c1-400)"
    fi
}

out "$W/load.out" podman load -i "$W/image.tar"
grep -q '^rc=0$' "$W/load.out" && pass "podman load (rootless)" ||
    { fail "podman load: $(tail -3 "$W/load.out" | tr '\n' ' ')"; finish; }

PROBE='id; cat /proc/self/uid_map /proc/self/gid_map; ls -ln /bin/busybox /etc/passwd; echo $$ $(hostname); echo err >&2'
same "run --rm: ids, mapping, owners, pid 1" run --rm --network none --hostname rl "$NAME" sh -c "$PROBE"
WANT_RC=3 same "exit code 3 propagates" run --rm --network none "$NAME" sh -c 'exit 3'
same "--userns=keep-id" run --rm --network none --hostname rl --userns=keep-id "$NAME" sh -c "$PROBE"

# detached, exec, stop, rm (one container per runtime, same name)
for r in "$REFU" "$RTU"; do
    t=$(basename "$r")
    out "$W/d-$t.out" podman --runtime "$r" run -d --name rl-d --network none "$NAME" \
        sh -c 'trap "exit 7" TERM; while :; do sleep 0.1; done'
    out "$W/e-$t.out" podman --runtime "$r" exec rl-d sh -c 'id; echo exec-ok; exit 5'
    out "$W/eu-$t.out" podman --runtime "$r" exec --user 65534 rl-d id -u
    out "$W/s-$t.out" podman --runtime "$r" stop -t 10 rl-d
    out "$W/x-$t.out" podman --runtime "$r" inspect -f '{{.State.ExitCode}}' rl-d
    out "$W/r-$t.out" podman --runtime "$r" rm rl-d
done
rt=$(basename "$RTU") ref=$(basename "$REFU")
grep -q '^rc=0$' "$W/d-$rt.out" && pass "run -d" || fail "run -d: $(tail -3 "$W/d-$rt.out" | tr '\n' ' ')"
for c in e:exec eu:"exec --user 65534" s:"stop (SIGTERM trap)" x:"exit code 7 recorded" r:rm; do
    f=${c%%:*} what=${c#*:}
    if cmp -s "$W/$f-$ref.out" "$W/$f-$rt.out"; then
        pass "$what (as $ref)"
    else
        fail "$what: differs from $ref: $(diff "$W/$f-$ref.out" "$W/$f-$rt.out" | head -6 | tr '\n' ' ' | cut -c1-300)"
    fi
done

# memory limit: only where the user's cgroups are delegated (cgroup v2, and
# the parent of the caller's cgroup the user's, as under systemd's
# user@.service); runtime-tests/vm-rootless.sh checks it in a pure-v2 VM
# with a delegated subtree, next to crun and runc.
mine=$(awk -F: '$1 == 0 {print $3}' /proc/self/cgroup)
if [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
    echo "SKIP memory limit: /sys/fs/cgroup is not cgroup v2 (a hybrid or v1 host has no cgroups to delegate to a user; vm-rootless.sh checks it)"
elif ! as_user sh -c "test -w /sys/fs/cgroup$(dirname "$mine")/cgroup.procs"; then
    echo "SKIP memory limit: no cgroup is delegated to $USR (systemd's user@.service would; vm-rootless.sh checks it)"
else
    same "--memory 64m read back in the container" run --rm --network none --memory 64m "$NAME" cat /sys/fs/cgroup/memory.max
fi

cleanup
trap - EXIT
finish
