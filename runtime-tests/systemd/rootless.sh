#!/bin/bash
# Runs inside `run-in-vm.sh --systemd` (called by in-vm.sh on cgroup v2):
# rootless with systemd's own delegation, as on a desktop. Root makes user
# rctest (uid 1001) and starts its user@1001.service, whose cgroup subtree
# systemd delegates to the user (Delegate=pids memory cpu). As that user,
# `systemd-run --user --scope -p Delegate=yes` puts a shell in a scope of
# its own under user@1001.service, as a login shell would start one; the
# shell moves itself to a leaf, enables memory and pids below the scope and
# runs each runtime (rcontain, runc, crun when present) with the cgroupfs
# driver, cgroupsPath inside the scope, memory and pids limits: the limits
# are read back from the container's cgroup, its init is in it, delete
# removes it, and rcontain's results are the same as runc's and crun's.
# Then --systemd-cgroup as the user: rcontain refuses it in one line (it
# has no driver for systemd's per-user manager) and leaves nothing.
# The bundle is /job/bundle-rootless (config.json with cgroupsPath @CG@).
# Prints PASS/FAIL lines; exits 1 if any failed.
set -u
fails=0
pass() { echo "PASS: rootless: $*"; }
fail() { echo "FAIL: rootless: $*"; fails=$((fails + 1)); }
uid=1001

useradd -u $uid -U -M -d /job/home -s /bin/sh rctest
mkdir -p /job/home
# The user reaches the runtime and its bundle through /job (a mktemp dir, 0700).
chmod 755 /job
chown -R $uid:$uid /job/home /job/bundle-rootless
# pam_systemd gives the user manager its XDG_RUNTIME_DIR on a real host;
# the VM's rootfs has no libpam-systemd, so a drop-in sets it.
mkdir -p /run/systemd/system/user@$uid.service.d
printf '[Service]\nEnvironment=XDG_RUNTIME_DIR=/run/user/%s\n' $uid >/run/systemd/system/user@$uid.service.d/xdg.conf
systemctl daemon-reload
if ! systemctl start user@$uid.service; then
    fail "starting user@$uid.service: $(journalctl -b -n 15 --no-pager 2>&1 | tr '\n' ' ')"
    exit 1
fi
mcg=$(systemctl show -p ControlGroup --value user@$uid.service)
echo "user@$uid.service: $mcg, controllers $(cat /sys/fs/cgroup$mcg/cgroup.controllers)"

# The user's side, in its scope.
cat >/job/home/in-scope.sh <<'EOF'
#!/bin/sh
cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
d=/sys/fs/cgroup$cg
echo "scope: $cg"
# No process may stay in a cgroup whose children get controllers.
mkdir "$d/sup" && echo $$ >"$d/sup/cgroup.procs" || { echo "FAIL: rootless: leaving the scope for a leaf"; exit 1; }
echo "+memory +pids" >"$d/cgroup.subtree_control" || { echo "FAIL: rootless: enabling memory and pids in $cg"; exit 1; }
cd /job/bundle-rootless
for rt in $RUNTIMES; do
    name=$(basename "$rt")
    sed "s|@CG@|$cg/$name|" config.in >config.json
    out=$("$rt" run c1 2>&1)
    sed -i 's|cat /proc/self/cgroup; echo ran|exec sleep 100|' config.json
    "$rt" run -d c2 >/dev/null 2>&1 </dev/null
    echo "$name run: $(echo "$out" | tr '\n' ' ' | sed "s|$cg|SCOPE|g")"
    echo "$name memory.max: $(cat "$d/$name/memory.max" 2>&1)"
    echo "$name pids.max: $(cat "$d/$name/pids.max" 2>&1)"
    echo "$name procs: $(wc -l <"$d/$name/cgroup.procs" 2>&1)"
    "$rt" delete -f c2 >/dev/null 2>&1
    echo "$name after delete: $(ls -d "$d/$name" 2>&1 | sed "s|$d|SCOPE|g")"
done
sed "s|@CG@|user.slice:rcontain:rl|" config.in >config.json
echo "rcontain --systemd-cgroup: $(/job/rcontain --systemd-cgroup run sd1 2>&1 | sed 's/^/[/; s/$/]/' | tr '\n' ' ')"
echo "rcontain --systemd-cgroup state: $(/job/rcontain state sd1 2>&1 | head -c 60)"
echo "runc --systemd-cgroup: $(runc --systemd-cgroup run sd1 2>&1 | tail -n 1)"
runc delete -f sd1 >/dev/null 2>&1
echo "state left: $(ls -A "$XDG_RUNTIME_DIR/rcontain" 2>/dev/null)"
EOF
chmod 755 /job/home/in-scope.sh
runtimes="/job/rcontain $(command -v runc) $(command -v crun)"
out=$(setpriv --reuid=$uid --regid=$uid --clear-groups -- env -i PATH=/job:/usr/bin:/bin:/usr/sbin:/sbin \
    HOME=/job/home USER=rctest XDG_RUNTIME_DIR=/run/user/$uid RUNTIMES="$runtimes" \
    systemd-run --user --scope -p Delegate=yes --quiet /job/home/in-scope.sh 2>&1)
echo "$out"
case $out in *FAIL:*) fails=$((fails + 1)) ;; esac
has() { echo "$out" | grep -qxF -- "$1"; }
scope=$(echo "$out" | sed -n 's/^scope: //p')
case $scope in
    "$mcg"/*) pass "the user's shell runs in a scope under $mcg" ;;
    *) fail "the user's scope '$scope' is not under $mcg" ;;
esac
has "rcontain run: 0::SCOPE/rcontain ran " && pass "rcontain runs, in its cgroup inside the user's scope" ||
    fail "rcontain run: $(echo "$out" | grep '^rcontain run:')"
has "rcontain memory.max: 67108864" && has "rcontain pids.max: 50" && pass "memory.max and pids.max applied" ||
    fail "limits: $(echo "$out" | grep -E '^rcontain (memory|pids)' | tr '\n' ' ')"
has "rcontain procs: 1" && pass "the init is in it" || fail "$(echo "$out" | grep '^rcontain procs')"
echo "$out" | grep -q '^rcontain after delete: .*No such file' && pass "delete removes the cgroup" ||
    fail "$(echo "$out" | grep '^rcontain after delete')"
for ref in runc crun; do
    echo "$out" | grep -q "^$ref " || continue
    mine=$(echo "$out" | grep '^rcontain ' | grep -v systemd | sed 's/rcontain/RT/g')
    theirs=$(echo "$out" | grep "^$ref " | grep -v systemd | sed "s/$ref/RT/g")
    if [ "$mine" = "$theirs" ]; then pass "the same as $ref"; else fail "differs from $ref: $(diff <(echo "$theirs") <(echo "$mine") | tr '\n' ' ')"; fi
done
sd=$(echo "$out" | sed -n 's/^rcontain --systemd-cgroup: //p')
case $sd in
    "[rcontain: --systemd-cgroup: only as root"*"] ") pass "--systemd-cgroup refused in one line: $sd" ;;
    *) fail "--systemd-cgroup as the user: $sd" ;;
esac
echo "$out" | grep '^rcontain --systemd-cgroup state:' | grep -q '"status"' &&
    fail "a container was recorded: $(echo "$out" | grep 'systemd-cgroup state')" || pass "no container recorded"
has "state left: " && pass "no state left" || fail "$(echo "$out" | grep '^state left')"
exit $((fails > 0))
