#!/bin/sh
# The systemd cgroup driver for real: boots `run-in-vm.sh --systemd`
# (Debian 12, systemd as PID 1, a system bus) once per cgroup layout and
# runs runtime-tests/systemd/in-vm.sh there, which compares rcontain
# --systemd-cgroup with runc --systemd-cgroup on the same config (unit
# properties, cgroup files), across daemon-reload, update, pause, delete;
# on v2 also rootless in the user's user@.service delegation, against runc
# and crun, and --systemd-cgroup as the user against runc (the user's
# systemd on its bus: the rootfs gets dbus-user-session;
# runtime-tests/systemd/rootless.sh); on v1 and hybrid, that the latter is
# refused on one line.
# VM_SYSTEMD_LAYOUTS: the layouts (default "v2 hybrid"; v1 works too).
# Then, unless VM_SYSTEMD_ENGINES=0, containerd (SystemdCgroup) and podman
# (--cgroup-manager=systemd) run a container on rcontain in a VM whose
# rootfs has Debian's containerd and podman (runtime-tests/systemd/engines.sh;
# the first run builds that rootfs from Debian's archive: when that or the
# boot fails, one "skipped:" line).
# Exit status: 0 when all passed (or no VM runner / runc: "skipped: ..."),
# 1 when any failed, 124/125: VM timeout/failure.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/runtime-tests/vm-lib.sh"
find_vm "$repo" "the systemd cgroup driver"
runc=$(command -v runc || true)
[ -n "$runc" ] || { echo "skipped: host lacks runc (the reference for the systemd driver)"; exit 0; }
rcontain=${RCONTAIN_BIN:-}
if [ -z "$rcontain" ]; then
    (cd "$repo" && cargo build --release --bin rcontain >&2)
    rcontain=$repo/target/release/rcontain
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
cp "$rcontain" "$dir/rcontain"
cp "$repo/runtime-tests/systemd/in-vm.sh" "$dir/"
"$repo/bundles/make-bundle.sh" "$dir/base" sleep 600 >/dev/null
# One config for both runtimes but the unit name (runc-t1, rcontain-t1).
# Devices: a deny-all, then "c *:11 w", which systemd has no DeviceAllow
# spelling for (left to the runtime's own filter), with /dev/kmsg (1:11)
# bound in to try it. Annotations: unit properties in GVariant text, one
# in the "Sec" spelling that becomes "USec".
resources='{"memory":{"limit":67108864,"reservation":33554432},
  "cpu":{"shares":512,"quota":25000,"period":100000,"cpus":"0","mems":"0"},
  "pids":{"limit":100},
  "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","minor":11,"access":"w"}]}'
# (systemd keeps TimeoutStopUSec to the millisecond across a daemon-reload)
annotations='{"org.systemd.property.TimeoutStopUSec":"uint64 123456000",
  "org.systemd.property.CollectMode":"'"'inactive-or-failed'"'",
  "org.systemd.property.RuntimeMaxSec":"3600"}'
kmsg='{"destination":"/dev/kmsg","type":"bind","source":"/dev/kmsg","options":["bind"]}'
for rt in runc rcontain badcpus badannot; do
    mkdir "$dir/bundle-$rt"
    a=$annotations
    case $rt in
        badcpus) r=$(printf '%s' "$resources" | jq -c '.cpu.cpus = "0-255"') path=system.slice:rcontain:bad1 ;;
        # a value that is not GVariant text (a string needs quotes)
        badannot) r=$resources path=system.slice:rcontain:bad2
            a=$(printf '%s' "$a" | jq -c '."org.systemd.property.CollectMode" = "inactive"') ;;
        *) r=$resources path=system.slice:$rt:t1 ;;
    esac
    jq --argjson r "$r" --arg p "$path" --argjson a "$a" --argjson m "$kmsg" \
        '.linux.resources = (.linux.resources // {}) + $r | .linux.cgroupsPath = $p | .process.terminal = false
         | .annotations = (.annotations // {}) + $a | .mounts += [$m]' \
        "$dir/base/config.json" >"$dir/bundle-$rt/config.json"
    # runc refuses a rootfs that is a symlink
    cp -a "$dir/base/rootfs" "$dir/bundle-$rt/rootfs"
done

# Rootless (runtime-tests/systemd/rootless.sh, on v2): uid 1001 mapped to
# root, memory and pids limits, cgroupsPath filled in there.
cp "$repo/runtime-tests/systemd/rootless.sh" "$dir/"
mkdir "$dir/bundle-rootless"
jq '.linux.namespaces += [{"type": "user"}]
    | .linux.uidMappings = [{"containerID": 0, "hostID": 1001, "size": 1}]
    | .linux.gidMappings = [{"containerID": 0, "hostID": 1001, "size": 1}]
    | .mounts |= map(if .options then .options -= ["gid=5"] else . end)
    | .process.terminal = false | .process.args = ["sh", "-c", "cat /proc/self/cgroup; echo ran"]
    | .linux.resources = {"memory": {"limit": 67108864}, "pids": {"limit": 50}}
    | .linux.cgroupsPath = "@CG@"' "$dir/base/config.json" >"$dir/bundle-rootless/config.in"
# --systemd-cgroup as the user: no cgroupsPath (the user's user.slice), a
# cgroup namespace and cgroup mount to read the limits from inside; and
# the same with an io weight, which user@.service does not delegate.
jq 'del(.linux.cgroupsPath) | .linux.namespaces += [{"type": "cgroup"}]
    | .mounts += [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "ro"]}]
    | .process.args = ["sh", "-c", "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; echo ran; exec sleep 100"]' \
    "$dir/bundle-rootless/config.in" >"$dir/bundle-rootless/config-sd.json"
jq '.linux.resources.blockIO = {"weight": 100} | .process.args = ["true"]' \
    "$dir/bundle-rootless/config-sd.json" >"$dir/bundle-rootless/config-sd-io.json"
cp -a "$dir/base/rootfs" "$dir/bundle-rootless/rootfs"
crun=$(command -v crun || true)

rc=0
for layout in ${VM_SYSTEMD_LAYOUTS:-v2 hybrid}; do
    echo "== systemd, cgroup $layout"
    s=$(date +%s)
    # dbus-user-session: the user's bus, as on a desktop (rootless.sh)
    RCONTAIN_VM_PACKAGES="dbus-user-session" "$vm" --systemd --cgroup "$layout" --mem 1024 --timeout 300 --with "$runc" ${crun:+--with "$crun"} "$dir" -- ./in-vm.sh || rc=1
    echo "== $layout: $(($(date +%s) - s)) s"
done

[ "${VM_SYSTEMD_ENGINES:-1}" = 0 ] && exit $rc
img=$(dirname "$vm")/../clients/make-busybox-image.sh
if ! [ -x "$img" ] || ! "$img" "$dir/img" >/dev/null 2>&1; then
    echo "skipped: host lacks shared/clients/make-busybox-image.sh (or it failed): containerd and podman"
    exit $rc
fi
cp "$repo/runtime-tests/systemd/engines.sh" "$dir/"
echo "== systemd, cgroup v2, containerd and podman"
s=$(date +%s)
set +e
RCONTAIN_VM_PACKAGES="containerd podman" "$vm" --systemd --mem 1536 --timeout 300 "$dir" -- ./engines.sh
e=$?
set -e
case $e in
    0) ;;
    125) echo "skipped: could not build or boot the systemd VM with Debian's containerd and podman (run-in-vm exit 125)" ;;
    *) rc=1 ;;
esac
echo "== engines: $(($(date +%s) - s)) s"
exit $rc
