#!/bin/bash
# Runs inside `run-in-vm.sh --systemd` (called by in-vm.sh; on cgroup v1
# and hybrid only the user's --systemd-cgroup refusal, see below):
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
# Then --systemd-cgroup as the user, with rcontain and runc: the user's
# systemd (reached on the user's bus, from dbus-user-session) makes each
# scope in user.slice of user@1001.service, the container reads its memory
# and pids limits in its cgroup namespace, systemctl --user and busctl
# --user show them on the scope, delete removes it; an io limit (io is not
# delegated) fails naming the field, and so does a missing user bus, both
# leaving nothing. On v1 and hybrid (nothing to delegate) --systemd-cgroup
# as the user is refused on one line, the user's bus there, nothing left.
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
as_user() {
    setpriv --reuid=$uid --regid=$uid --clear-groups -- env -i PATH=/job:/usr/bin:/bin:/usr/sbin:/sbin \
        HOME=/job/home USER=rctest XDG_RUNTIME_DIR=/run/user/$uid "$@"
}

# cgroup v1 or hybrid: the user's systemd has no controller to delegate,
# so --systemd-cgroup as the user is refused on one line before anything
# is made (runc refuses too), though the user's bus is there.
if [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
    cp /job/bundle-rootless/config-sd.json /job/bundle-rootless/config.json
    out=$(as_user sh -c 'cd /job/bundle-rootless
        echo "bus: $(ls "$XDG_RUNTIME_DIR/bus" 2>&1)"
        echo "rcontain sd: $(timeout 60 /job/rcontain --systemd-cgroup run sd1 2>&1 | sed "s/^/[/; s/$/]/" | tr "\n" " ")"
        echo "rcontain sd left: $(systemctl --user list-units --all --no-legend rcontain-sd1.scope | wc -l) $(/job/rcontain state sd1 2>&1 | grep -c "\"status\"")"
        echo "runc sd: $(timeout 60 runc --systemd-cgroup run sd1 2>&1 | tail -n 1)"
        runc delete -f sd1 >/dev/null 2>&1')
    echo "$out"
    has() { echo "$out" | grep -qxF -- "$1"; }
    has "bus: /run/user/$uid/bus" || fail "the user's bus is not there: $(echo "$out" | grep '^bus:')"
    sd=$(echo "$out" | sed -n 's/^rcontain sd: //p')
    case $sd in
        "[rcontain: --systemd-cgroup: rootless needs cgroup v2"*"] ") pass "--systemd-cgroup refused on cgroup v1/hybrid in one line: $sd" ;;
        *) fail "--systemd-cgroup as the user on cgroup v1/hybrid: $sd" ;;
    esac
    has "rcontain sd left: 0 0" && pass "nothing left after the refusal" || fail "$(echo "$out" | grep '^rcontain sd left')"
    echo "skipped: rootless with user@.service delegation: /sys/fs/cgroup is not cgroup2 (v1 or hybrid), no controller to delegate"
    exit $((fails > 0))
fi
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
# --systemd-cgroup as the user: the user's systemd (on its user bus) owns
# each runtime's scope, in user.slice of user@UID.service; the container
# reads its limits in its own cgroup namespace.
for rt in /job/rcontain $(command -v runc); do
    name=$(basename "$rt")
    cp config-sd.json config.json
    # the container's output apart from the runtime's (runc warns there)
    "$rt" --systemd-cgroup run -d sd1 >"$HOME/$name.out" 2>"$HOME/$name.err" </dev/null
    echo "$name sd run: $?"
    echo "$name sd stderr: $(tr '\n' ' ' <"$HOME/$name.err")"
    for _ in $(seq 100); do grep -q ran "$HOME/$name.out" && break; sleep 0.1; done
    echo "$name sd inside: $(tr '\n' ' ' <"$HOME/$name.out")"
    unit=$name-sd1.scope
    cg=$(systemctl --user show -p ControlGroup --value "$unit")
    echo "$name sd cgroup: $cg" | sed "s|$unit|UNIT|"
    echo "$name sd unit: $(systemctl --user show -p MemoryMax -p TasksMax -p Delegate -p ActiveState "$unit" | sort | tr '\n' ' ')"
    obj=/org/freedesktop/systemd1/unit/$(echo "$name" | sed 's/-/_2d/g')_2dsd1_2escope
    echo "$name sd busctl: $(busctl --user get-property org.freedesktop.systemd1 "$obj" org.freedesktop.systemd1.Scope MemoryMax TasksMax | tr '\n' ' ')"
    echo "$name sd files: $(cat "/sys/fs/cgroup$cg/memory.max" "/sys/fs/cgroup$cg/pids.max" 2>&1 | tr '\n' ' ')"
    "$rt" delete -f sd1 >/dev/null 2>&1
    echo "$name sd after delete: $(systemctl --user list-units --all --no-legend "$unit" | wc -l) $(ls -d "/sys/fs/cgroup$cg" 2>&1 | sed 's|.*: ||')"
done
# An io limit: user@.service does not delegate io (Delegate=pids memory cpu).
cp config-sd-io.json config.json
echo "rcontain sd io: $(/job/rcontain --systemd-cgroup run sd2 2>&1 | sed 's/^/[/; s/$/]/' | tr '\n' ' ')"
echo "rcontain sd io left: $(systemctl --user list-units --all --no-legend 'rcontain-sd2.scope' | wc -l) $(/job/rcontain state sd2 2>&1 | grep -c '"status"')"
echo "runc sd io: $(runc --systemd-cgroup run sd2 2>&1 | tail -n 1)"
runc delete -f sd2 >/dev/null 2>&1
# No user bus reachable: one line, nothing made.
cp config-sd.json config.json
echo "rcontain sd nobus: $(XDG_RUNTIME_DIR=/nonexistent /job/rcontain --root "$XDG_RUNTIME_DIR/rcontain" --systemd-cgroup run sd3 2>&1 | sed 's/^/[/; s/$/]/' | tr '\n' ' ')"
echo "rcontain sd nobus left: $(systemctl --user list-units --all --no-legend 'rcontain-sd3.scope' | wc -l) $(/job/rcontain state sd3 2>&1 | grep -c '"status"')"
echo "state left: $(ls -A "$XDG_RUNTIME_DIR/rcontain" 2>/dev/null)"
EOF
chmod 755 /job/home/in-scope.sh
runtimes="/job/rcontain $(command -v runc) $(command -v crun)"
out=$(as_user RUNTIMES="$runtimes" systemd-run --user --scope -p Delegate=yes --quiet /job/home/in-scope.sh 2>&1)
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
    mine=$(echo "$out" | grep '^rcontain ' | grep -v '^rcontain sd ' | sed 's/rcontain/RT/g')
    theirs=$(echo "$out" | grep "^$ref " | grep -v "^$ref sd " | sed "s/$ref/RT/g")
    if [ "$mine" = "$theirs" ]; then pass "the same as $ref"; else fail "differs from $ref: $(diff <(echo "$theirs") <(echo "$mine") | tr '\n' ' ')"; fi
done
# --systemd-cgroup as the user
has "rcontain sd run: 0" && pass "rcontain --systemd-cgroup run -d as the user" ||
    fail "$(echo "$out" | grep -E '^rcontain sd (run|stderr|inside)' | tr '\n' ' ')"
has "rcontain sd cgroup: $mcg/user.slice/UNIT" && pass "the scope is in user.slice of user@$uid.service" ||
    fail "$(echo "$out" | grep '^rcontain sd cgroup')"
has "rcontain sd inside: 67108864 50 ran " && pass "the container reads its limits from its cgroup" ||
    fail "$(echo "$out" | grep '^rcontain sd inside')"
has "rcontain sd files: 67108864 50 " && pass "memory.max and pids.max of the scope" ||
    fail "$(echo "$out" | grep '^rcontain sd files')"
has "rcontain sd unit: ActiveState=active Delegate=yes MemoryMax=67108864 TasksMax=50 " &&
    has "rcontain sd busctl: t 67108864 t 50 " && pass "the scope's properties (systemctl --user, busctl --user)" ||
    fail "$(echo "$out" | grep -E '^rcontain sd (unit|busctl)' | tr '\n' ' ')"
has "rcontain sd after delete: 0 No such file or directory" && pass "delete removes the scope" ||
    fail "$(echo "$out" | grep '^rcontain sd after delete')"
if echo "$out" | grep -q '^runc sd run: 0'; then
    mine=$(echo "$out" | grep -E '^rcontain sd (run|inside|cgroup|unit|busctl|files|after)' | sed 's/^rcontain/RT/')
    theirs=$(echo "$out" | grep -E '^runc sd (run|inside|cgroup|unit|busctl|files|after)' | sed 's/^runc/RT/')
    [ "$mine" = "$theirs" ] && pass "--systemd-cgroup: the same as runc" ||
        fail "--systemd-cgroup differs from runc: $(diff <(echo "$theirs") <(echo "$mine") | tr '\n' ' ')"
fi
io=$(echo "$out" | sed -n 's/^rcontain sd io: //p')
case $io in
    "[rcontain: "*"linux.resources.blockIO"*"io controller"*"] ") pass "an undelegated controller refused in one line: $io" ;;
    *) fail "io limit as the user: $io ($(echo "$out" | grep '^runc sd io'))" ;;
esac
has "rcontain sd io left: 0 0" && pass "nothing left after the refusal" || fail "$(echo "$out" | grep '^rcontain sd io left')"
nb=$(echo "$out" | sed -n 's/^rcontain sd nobus: //p')
case $nb in
    "[rcontain: --systemd-cgroup: rootless, and no user D-Bus"*"] ") pass "no user bus: one line: $nb" ;;
    *) fail "no user bus: $nb" ;;
esac
has "rcontain sd nobus left: 0 0" && pass "nothing left without a user bus" || fail "$(echo "$out" | grep '^rcontain sd nobus left')"
has "state left: " && pass "no state left" || fail "$(echo "$out" | grep '^state left')"
exit $((fails > 0))
