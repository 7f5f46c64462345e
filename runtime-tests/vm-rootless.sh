#!/bin/sh
# Rootless with a delegated cgroup v2 subtree, in a throwaway VM whose
# /sys/fs/cgroup is pure cgroup v2 (../shared/vm/run-in-vm.sh): root
# delegates /sys/fs/cgroup/deleg to uid 1001 (owner of the directory and of
# its cgroup.procs, memory and pids enabled below it) and moves the job
# there; rcontain then runs, as uid 1001, a bundle whose linux.cgroupsPath
# is inside the subtree with memory and pids limits. The limits must be read
# back from the container's cgroup, the init must be in it, and delete must
# remove it; runc does the same for comparison.
# Then rootless podman (when the host has podman, conmon and crun): as uid
# 1001, `podman --runtime rcontain run --memory 64m` with --cgroup-parent
# in the subtree prints the limit as with crun, also through `podman
# exec`; without --cgroup-parent rcontain puts the cgroup where runc does
# (beside its own: the subtree) and prints what runc prints.
# Exit status: 0 when it passed (or no VM runner: "skipped: ..."), 1 when
# it failed, 124/125: VM timeout/failure.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/runtime-tests/vm-lib.sh"
find_vm "$repo" "rootless with delegated cgroup v2"
rcontain=${RCONTAIN_BIN:-}
if [ -z "$rcontain" ]; then
    (cd "$repo" && cargo build --bin rcontain)
    rcontain=$repo/target/debug/rcontain
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
chmod 755 "$dir" # /job in the VM, where uid 1001 runs things
cp "$rcontain" "$dir/rcontain"
"$repo/bundles/make-bundle.sh" "$dir/bundle" sh -c 'cat /proc/self/cgroup; echo ran' >/dev/null
# A user namespace mapping uid/gid 1001 to root; devpts without gid=5.
jq '.linux.namespaces += [{"type": "user"}]
    | .linux.uidMappings = [{"containerID": 0, "hostID": 1001, "size": 1}]
    | .linux.gidMappings = [{"containerID": 0, "hostID": 1001, "size": 1}]
    | .mounts |= map(if .options then .options -= ["gid=5"] else . end)
    | .linux.resources = {"memory": {"limit": 67108864}, "pids": {"limit": 50}}' \
    "$dir/bundle/config.json" >"$dir/config.json"
rm "$dir/bundle/config.json"
# Rootless podman's part: its binaries, and the busybox image (built here,
# no registry) as a docker archive.
with_podman=""
if command -v podman >/dev/null && command -v conmon >/dev/null && command -v crun >/dev/null &&
    command -v newuidmap >/dev/null; then
    TOP=$repo W=$dir
    . "$repo/runtime-tests/engines-lib.sh"
    clients=$(find_clients)
    if [ -x "$clients/make-busybox-image.sh" ] &&
        "$clients/make-busybox-image.sh" "$dir/bb" >"$dir/bb.log" 2>&1; then
        cp "$dir/bb/docker-archive.tar" "$dir/image.tar"
        rm -rf "$dir/bb" "$dir/bb.log"
        for p in podman conmon crun catatonit newuidmap newgidmap; do
            with_podman="$with_podman --with $(command -v $p)"
        done
        with_podman="$with_podman --with /etc/containers"
        [ -d /usr/libexec/podman ] && with_podman="$with_podman --with /usr/libexec/podman"
    else
        echo "skipped: host lacks shared/clients/make-busybox-image.sh (the rootless podman part)"
    fi
else
    echo "skipped: host lacks podman, conmon, crun or newuidmap (the rootless podman part)"
fi
cat >"$dir/job.sh" <<'EOF'
#!/bin/sh
set -u
fail=0
check() { # what, got, want
    if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1: got '$2', want '$3'"; fail=1; fi
}
d=/sys/fs/cgroup/deleg
mkdir -p $d/job
echo "+memory +pids" >$d/cgroup.subtree_control
chown -R 1001:1001 $d
# The job joins the subtree: moving a process needs write access to the
# cgroup.procs of the common ancestor of where it is and where it goes.
echo $$ >$d/job/cgroup.procs
mkdir -p /run/user/1001 && chown 1001:1001 /run/user/1001 && chmod 700 /run/user/1001
chown -R 1001:1001 /job/bundle
as_user() { setpriv --reuid=1001 --regid=1001 --clear-groups -- env XDG_RUNTIME_DIR=/run/user/1001 "$@"; }
# config.json for runtime $1 (its cgroup is /deleg/$1) and process.args $2
cfg() {
    jq ".linux.cgroupsPath = \"/deleg/$1\" | .process.args = $2" /job/config.json >/job/bundle/config.json
    chown 1001:1001 /job/bundle/config.json
}
for rt in /job/rcontain runc; do
    name=$(basename $rt)
    cfg $name '["sh", "-c", "cat /proc/self/cgroup; echo ran"]'
    out=$(cd /job/bundle && as_user $rt run c1 2>&1)
    check "$name: runs, in its cgroup" "$out" "0::/deleg/$name
ran"
    cfg $name '["sleep", "100"]'
    (cd /job/bundle && as_user $rt run -d c2) || { echo "FAIL: $name run -d"; fail=1; }
    check "$name: memory.max" "$(cat $d/$name/memory.max 2>&1)" 67108864
    check "$name: pids.max" "$(cat $d/$name/pids.max 2>&1)" 50
    check "$name: the init is in it" "$(wc -l <$d/$name/cgroup.procs 2>&1)" 1
    as_user $rt delete -f c2 || { echo "FAIL: $name delete -f"; fail=1; }
    check "$name: cgroup removed" "$(ls -d $d/$name 2>/dev/null)" ""
done
check "state left" "$(ls -A /run/user/1001/rcontain 2>/dev/null)" ""
if [ -f /job/image.tar ]; then
    echo "rctest:x:1001:1001::/job/home:/bin/sh" >>/etc/passwd
    echo "rctest:x:1001:" >>/etc/group
    echo "rctest:100000:65536" >/etc/subuid
    echo "rctest:100000:65536" >/etc/subgid
    mkdir -p /var/tmp /job/home /job/xdg && chmod 1777 /var/tmp
    chown 1001:1001 /job/home /job/xdg && chmod 700 /job/xdg
    printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' >/job/containers.conf
    printf '[storage]\ndriver = "vfs"\ngraphroot = "/job/home/storage"\nrunroot = "/job/xdg/containers"\n' >/job/storage.conf
    pm() {
        setpriv --reuid=1001 --regid=1001 --clear-groups -- env HOME=/job/home USER=rctest \
            XDG_RUNTIME_DIR=/job/xdg CONTAINERS_CONF=/job/containers.conf \
            CONTAINERS_STORAGE_CONF=/job/storage.conf podman "$@" 2>&1
    }
    podman_run() { # runtime, podman run args...
        r=$1; shift
        setpriv --reuid=1001 --regid=1001 --clear-groups -- env HOME=/job/home USER=rctest \
            XDG_RUNTIME_DIR=/job/xdg CONTAINERS_CONF=/job/containers.conf \
            CONTAINERS_STORAGE_CONF=/job/storage.conf podman --runtime "$r" run --rm --network none "$@" 2>&1
    }
    check "podman load" "$(pm load -q -i /job/image.tar | tail -1)" "Loaded image: localhost/busybox:latest"
    img=localhost/busybox:latest
    for rt in crun /job/rcontain; do
        name=$(basename $rt)
        check "podman $name: --memory 64m --cgroup-parent in the subtree" \
            "$(podman_run $rt --memory 64m --cgroup-parent /deleg/pm-$name $img cat /sys/fs/cgroup/memory.max)" 67108864
        podman_run $rt -d --name pe --memory 64m --cgroup-parent /deleg/pm-$name $img sleep 100 >/dev/null
        check "podman $name: exec sees the limit" \
            "$(pm --runtime $rt exec pe cat /sys/fs/cgroup/memory.max)" 67108864
        pm --runtime $rt rm -f -t 0 pe >/dev/null
    done
    for rt in runc /job/rcontain; do
        check "podman $(basename $rt): --memory 64m, no --cgroup-parent (beside its own cgroup)" \
            "$(podman_run $rt --memory 64m $img cat /sys/fs/cgroup/memory.max)" 67108864
    done
    check "podman: containers left" "$(pm ps -a -q)" ""
    check "podman: rcontain state left" "$(ls -A /job/xdg/rcontain 2>/dev/null)" ""
fi
exit $fail
EOF
chmod +x "$dir/job.sh"
"$vm" --mem 1024 --timeout 600 --with "$(command -v setpriv)" --with "$(command -v env)" \
    --with "$(command -v runc)" --with "$(command -v jq)" $with_podman "$dir" -- ./job.sh
