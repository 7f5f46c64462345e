#!/bin/bash
# Runs inside `run-in-vm.sh --systemd` with Debian's containerd and podman
# (see runtime-tests/vm-systemd.sh): each runs a busybox container on
# /job/rcontain with systemd owning its cgroup, and leaves no unit behind.
# Prints PASS/FAIL lines; exits 1 if any failed.
cd /job || exit 1
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
image=$(cat img/IMAGE_NAME)

# containerd: the runc v2 shim with SystemdCgroup (ctr --runc-systemd-cgroup
# sets exactly that shim option), cgroupsPath slice:prefix:name.
systemctl start containerd
ctr images import img/oci.tar >/dev/null || fail "ctr images import"
R=(--runtime io.containerd.runc.v2 --runc-binary /job/rcontain --runc-systemd-cgroup)
out=$(timeout 120 ctr run --rm "${R[@]}" --cgroup system.slice:ctrtest:c1 "$image" c1 \
    sh -c 'cat /proc/self/cgroup; echo hello' 2>&1)
if echo "$out" | grep -q '^hello$'; then pass "containerd (SystemdCgroup) runs a container on rcontain"; else fail "containerd run: $out"; fi
timeout 120 ctr run -d "${R[@]}" --cgroup system.slice:ctrtest:c2 "$image" c2 sleep 100 >/dev/null 2>&1
st=$(systemctl show -p ActiveState --value ctrtest-c2.scope)
[ "$st" = active ] && pass "containerd: the container's unit ctrtest-c2.scope is active" || fail "containerd: ctrtest-c2.scope is $st"
ctr task kill -s KILL c2 >/dev/null 2>&1
for _ in $(seq 50); do ctr task ls -q 2>/dev/null | grep -q c2 || break; ctr task rm c2 >/dev/null 2>&1; sleep 0.2; done
ctr containers rm c2 >/dev/null 2>&1
left=$(systemctl list-units --all --no-legend 'ctrtest-*' | tr '\n' ' ')
[ -z "$left" ] && pass "containerd: no unit left" || fail "containerd: units left: $left"

# podman: --cgroup-manager=systemd makes libpod-<id>.scope in machine.slice.
p=(podman --root /tmp/podman --runroot /run/podman --runtime /job/rcontain --cgroup-manager=systemd)
"${p[@]}" load -i img/docker-archive.tar >/dev/null 2>&1 || fail "podman load"
out=$(timeout 120 "${p[@]}" run --rm --network none "$image" sh -c 'echo hello' 2>&1)
if echo "$out" | grep -q '^hello$'; then pass "podman --cgroup-manager=systemd runs a container on rcontain"; else fail "podman run: $out"; fi
id=$(timeout 120 "${p[@]}" run -d --network none "$image" sleep 100 2>&1)
st=$(systemctl show -p ActiveState --value "libpod-$id.scope")
[ "$st" = active ] && pass "podman: the container's unit libpod-<id>.scope is active" || fail "podman: libpod-$id.scope is $st"
timeout 120 "${p[@]}" rm -f "$id" >/dev/null 2>&1 || fail "podman rm -f"
left=$(systemctl list-units --all --no-legend 'libpod-*' | tr '\n' ' ')
[ -z "$left" ] && pass "podman: no unit left" || fail "podman: units left: $left"
exit $((fails > 0))
