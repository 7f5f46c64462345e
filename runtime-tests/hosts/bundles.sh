#!/bin/bash
# Build the host-matrix probe bundles into OUT, one directory per bundle:
# each is `rcontain spec`'s default config (what `runc spec` users start
# from) with one aspect users run changed, its process the observer
# (observe.sh: prints what the container sees).
#
#   runtime-tests/hosts/bundles.sh OUT RCONTAIN
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1 rcontain=$2
rm -rf "$out"
mkdir -p "$out"
base=$out/.base
"$here/../../bundles/make-bundle.sh" "$base" >/dev/null
install -m 755 "$here/observe.sh" "$base/rootfs/observe.sh"
rm "$base/config.json"
"$rcontain" spec -b "$base"
# the observer, no terminal, a fixed exit status to see it come back
jq '.process.terminal = false | .process.args = ["/bin/sh", "/observe.sh"]
    | .process.env += ["PROBE_EXIT=3"]' "$base/config.json" > "$base/c" && mv "$base/c" "$base/config.json"

# make NAME JQ-FILTER: a bundle whose config is the base's through the filter
make() {
    mkdir "$out/$1"
    cp -a "$base/rootfs" "$out/$1/rootfs"
    jq "$2" "$base/config.json" > "$out/$1/config.json"
}

make default .

# a user namespace (root is host uid 100000), a non-root user with
# supplementary groups, a umask and a working directory
make userns '.linux.namespaces += [{"type": "user"}]
    | .linux.uidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    | .linux.gidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    | .process.user = {"uid": 1000, "gid": 1000, "additionalGids": [5, 100], "umask": 23}
    | .process.cwd = "/tmp"'
chown -R 100000:100000 "$out/userns/rootfs"

# read-only rootfs, more masked (a file, a directory) and read-only paths
make readonly '.root.readonly = true
    | .linux.maskedPaths += ["/etc/group", "/sys/devices/virtual"]
    | .linux.readonlyPaths += ["/proc/sys", "/tmp"]
    | .mounts += [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "mode=1777", "size=16m"]}]'

# limits every cgroup layout applies; rlimits
make resources '.linux.resources += {
        "memory": {"limit": 67108864, "swap": 67108864},
        "pids": {"limit": 64},
        "cpu": {"quota": 50000, "period": 100000, "shares": 512}}
    | .process.rlimits = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                          {"type": "RLIMIT_NPROC", "soft": 100, "hard": 100}]'

# an I/O weight: needs BFQ (v1) or io.weight (v2), which not every kernel has
make blkio '.linux.resources.blockIO = {"weight": 500}'

# a seccomp profile: mkdir(at) fails with EPERM, chmod with EACCES
make seccomp '.linux.seccomp = {"defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}'

# devices: one the cgroup allows (/dev/null's numbers), one it denies
make devices '.linux.devices = [
        {"path": "/dev/probe-allowed", "type": "c", "major": 1, "minor": 3,
         "fileMode": 384, "uid": 1, "gid": 5},
        {"path": "/dev/probe-denied", "type": "c", "major": 1, "minor": 5,
         "fileMode": 438, "uid": 0, "gid": 0}]
    | .linux.resources.devices += [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]'

# a terminal: the runtime makes the container's pty (its /dev/console)
make terminal '.process.terminal = true'

# hooks: each appends its stage, what the state says and its argv/env to
# BUNDLE/hooks.log (the bundle directory, from the state on stdin)
hook() {
    printf '{"path": "/bin/sh", "args": ["sh", "-c", %s, "hook", "%s"], "env": ["HOOKVAR=set"]}' \
        "$(jq -Rn --arg s 'read -r s; b=$(printf %s "$s" | sed -n "s/.*\"bundle\": *\"\([^\"]*\)\".*/\1/p"); st=$(printf %s "$s" | sed -n "s/.*\"status\": *\"\([^\"]*\)\".*/\1/p"); case $s in *\"pid\":*) p=pid;; *) p=nopid;; esac; echo "hook.$1: status=$st $p HOOKVAR=$HOOKVAR" >> "$b/hooks.log"' '$s')" "$1"
}
make hooks ".hooks = {
    \"prestart\": [$(hook prestart)],
    \"createRuntime\": [$(hook createRuntime)],
    \"createContainer\": [$(hook createContainer)],
    \"poststart\": [$(hook poststart)],
    \"poststop\": [$(hook poststop)]}"

rm -rf "$base"
