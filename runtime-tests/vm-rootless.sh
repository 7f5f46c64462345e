#!/bin/sh
# Rootless with a delegated cgroup v2 subtree, in a throwaway VM whose
# /sys/fs/cgroup is pure cgroup v2 (../shared/vm/run-in-vm.sh): root
# delegates /sys/fs/cgroup/deleg to uid 1001 (owner of the directory and of
# its cgroup.procs, memory and pids enabled below it) and moves the job
# there; rcontain then runs, as uid 1001, a bundle whose linux.cgroupsPath
# is inside the subtree with memory and pids limits. The limits must be read
# back from the container's cgroup, the init must be in it, and delete must
# remove it; runc does the same for comparison.
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
exit $fail
EOF
chmod +x "$dir/job.sh"
"$vm" --mem 1024 --timeout 300 --with "$(command -v setpriv)" --with "$(command -v env)" \
    --with "$(command -v runc)" --with "$(command -v jq)" "$dir" -- ./job.sh
