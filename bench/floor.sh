#!/bin/sh
# The floor of a container start, for bench/mount-sweep.sh
# (SWEEP_EXTRA="floor=bench/floor.sh"): called as a runtime would be
# (`floor.sh --root ROOT run -b BUNDLE ID`), it only creates the bundle's
# five namespaces with unshare(1) (the mount namespace a copy of the
# caller's table), chroots into the rootfs and runs /bin/true there: no
# config, cgroups, mounts, pivot_root, state or capabilities.
[ "$3" = run ] && [ "$4" = -b ] || { echo "usage: $0 --root ROOT run -b BUNDLE ID" >&2; exit 2; }
exec unshare --mount --pid --net --ipc --uts --fork chroot "$5/rootfs" /bin/true
