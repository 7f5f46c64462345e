#!/bin/bash
# Runs inside `run-in-vm.sh --systemd` (see runtime-tests/vm-systemd.sh):
# the same container under runc and rcontain with --systemd-cgroup, then
# compares their units' properties and cgroup files, survives a
# daemon-reload, drives update/pause/resume/ps/events/kill --all/delete
# through the scope and checks nothing remains; then rootless.sh
# (rootless with the user's user@.service delegation and --systemd-cgroup
# as the user; on v1 and hybrid only the latter's refusal). Prints
# PASS/FAIL lines; exits 1 if any failed.
set -u
cd /job
export PATH=/job:$PATH
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
layout=$(stat -f -c %T /sys/fs/cgroup)   # cgroup2fs or tmpfs
echo "systemd $(systemctl --version | head -n1 | cut -d' ' -f2), /sys/fs/cgroup: $layout"

props="Slice ControlGroup Delegate DefaultDependencies MemoryAccounting CPUAccounting
IOAccounting BlockIOAccounting TasksAccounting MemoryMax MemoryLow MemorySwapMax
MemoryLimit CPUWeight CPUShares CPUQuotaPerSecUSec CPUQuotaPeriodUSec AllowedCPUs
AllowedMemoryNodes TasksMax BlockIOWeight DevicePolicy DeviceAllow TimeoutStopUSec CollectMode
RuntimeMaxUSec ActiveState"
# runc 1.1 (Debian 12's) differs from current runc, which rcontain follows,
# in two DeviceAllow entries: it spells the pts rule by its /proc/devices
# name (char-pts; runc now writes char-136 for systemd >= 240, the same
# rule to systemd) and has no tun rule (10:200, back in runc's defaults
# since 1.2). Its list is brought to current runc's before comparing.
runc11=$(runc --version | grep -q '^runc version 1\.1\.' && echo yes)
show() { # UNIT: its properties, the runtime's name replaced by RT
    systemctl show "$1" $(printf -- '-p %s ' $props) | sed 's/\(runc\|rcontain\)-t1/RT-t1/' |
        if [ "${1%%-*}" = runc ] && [ "$runc11" = yes ]; then
            sed 's/^DeviceAllow=char-pts rwm$/DeviceAllow=char-136 rwm/
                 /^DevicePolicy=strict$/{p;s|.*|DeviceAllow=/dev/char/10:200 rwm|}'
        else cat; fi | sort
}
# the container's cgroup files, from the unit's ControlGroup
files() {
    local cg=$1
    if [ "$layout" = cgroup2fs ]; then
        for f in memory.max memory.low memory.swap.max cpu.weight cpu.max cpuset.cpus cpuset.mems pids.max; do
            echo "$f=$(cat /sys/fs/cgroup$cg/$f 2>&1)"
        done
    else
        for f in memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes cpu/cpu.shares \
            cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpuset/cpuset.cpus cpuset/cpuset.mems pids/pids.max; do
            echo "$f=$(cat /sys/fs/cgroup/${f%%/*}$cg/${f#*/} 2>&1)"
        done
    fi
}
cgroup_of() { systemctl show -p ControlGroup --value "$1"; }

for rt in runc rcontain; do
    if "$rt" --systemd-cgroup create --bundle bundle-$rt "$rt-c1" >"$rt.log" 2>&1 </dev/null &&
        "$rt" start "$rt-c1" >>"$rt.log" 2>&1; then
        pass "$rt --systemd-cgroup create/start"
    else
        fail "$rt --systemd-cgroup create/start: $(tr '\n' ' ' <"$rt.log")"
    fi
    show "$rt-t1.scope" >"$rt.props"
    files "$(cgroup_of "$rt-t1.scope")" >"$rt.files"
done
echo "--- rcontain's unit (runc's where it differs below)"; cat rcontain.props rcontain.files
# The device rules: "c *:11 w" is granted by the runtime's own filter only
# (systemd's DeviceAllow cannot say "*:11"); reading is not granted.
devices() { # RT: what the container may do with /dev/kmsg
    local w=denied r=denied
    "$1" exec "$1-c1" sh -c 'echo "$0 device test" >/dev/kmsg' "$1" 2>/dev/null && w=allowed
    "$1" exec "$1-c1" sh -c ': </dev/kmsg' 2>/dev/null && r=allowed
    echo "write $w, read $r"
}
for rt in runc rcontain; do devices $rt >$rt.dev; done
if [ "$(cat rcontain.dev)" = "write allowed, read denied" ] && cmp -s runc.dev rcontain.dev; then
    pass "device rules applied as runc's: $(cat rcontain.dev)"
else
    fail "device rules: runc: $(cat runc.dev); rcontain: $(cat rcontain.dev)"
fi
if diff runc.props rcontain.props; then pass "same unit properties as runc"; else fail "unit properties differ from runc's (above: < runc, > rcontain)"; fi
if diff runc.files rcontain.files; then pass "same cgroup files as runc"; else fail "cgroup files differ from runc's (< runc, > rcontain)"; fi

systemctl daemon-reload
sleep 1
for rt in runc rcontain; do
    st=$("$rt" state "$rt-c1" 2>&1 | grep -o '"status": *"[a-z]*"')
    show "$rt-t1.scope" >"$rt.props2"
    files "$(cgroup_of "$rt-t1.scope")" >"$rt.files2"
    if echo "$st" | grep -q running && cmp -s "$rt.props" "$rt.props2" && cmp -s "$rt.files" "$rt.files2"; then
        pass "$rt: the container and its limits survive daemon-reload"
    else
        fail "$rt: after daemon-reload: $st; $(diff "$rt.props" "$rt.props2" | tr '\n' ' ') $(diff "$rt.files" "$rt.files2" | tr '\n' ' ')"
    fi
done

for rt in runc rcontain; do devices $rt >$rt.dev2; done
if cmp -s runc.dev2 rcontain.dev2; then
    pass "after daemon-reload the device rules are still runc's: $(cat rcontain.dev2)"
else
    fail "device rules after daemon-reload: runc: $(cat runc.dev2); rcontain: $(cat rcontain.dev2)"
fi

# update: the unit's property and the file, as runc
for rt in runc rcontain; do
    "$rt" update --memory 100663296 --pids-limit 50 "$rt-c1" >>"$rt.log" 2>&1 || fail "$rt update: $(tail -n1 "$rt.log")"
    show "$rt-t1.scope" >"$rt.props3"
    files "$(cgroup_of "$rt-t1.scope")" >"$rt.files3"
done
if grep -q '^\(MemoryMax\|MemoryLimit\)=100663296$' rcontain.props3 && grep -q '^TasksMax=50$' rcontain.props3 &&
    diff runc.props3 rcontain.props3 && diff runc.files3 rcontain.files3; then
    pass "update sets the unit properties and files as runc"
else
    fail "update: $(grep -E '^(MemoryMax|MemoryLimit|TasksMax)=' rcontain.props3 | tr '\n' ' ')"
fi

r=rcontain; c=rcontain-c1
$r pause $c && $r state $c | grep -q '"paused"' && $r resume $c && $r state $c | grep -q '"running"' &&
    pass "pause/resume" || fail "pause/resume"
$r ps $c | grep -q sleep && pass "ps" || fail "ps: $($r ps $c 2>&1 | tr '\n' ' ')"
$r events --stats $c | grep -q '"memory"' && pass "events --stats" || fail "events --stats"
cg=$(cgroup_of rcontain-t1.scope)
$r kill --all $c KILL
for _ in $(seq 50); do $r state $c 2>/dev/null | grep -q '"stopped"' && break; sleep 0.1; done
$r state $c | grep -q '"stopped"' && pass "kill --all" || fail "kill --all: $($r state $c)"
$r delete $c && pass "delete" || fail "delete"
runc delete -f runc-c1 || fail "runc delete"
left=$(systemctl list-units --all --no-legend 'rcontain-t1*' 'runc-t1*' | tr '\n' ' ')
[ -z "$left" ] && pass "no unit left after delete" || fail "units left: $left"
if [ "$layout" = cgroup2fs ]; then dirs=/sys/fs/cgroup$cg; else dirs=$(ls -d /sys/fs/cgroup/*$cg 2>/dev/null); fi
gone=yes; for d in $dirs; do [ -e "$d" ] && gone="no: $d"; done
[ "$gone" = yes ] && pass "cgroup dirs gone" || fail "cgroup dir left: $gone"

# A failure after the unit started (a cpuset this VM lacks) leaves nothing.
if $r --systemd-cgroup run -d --bundle bundle-badcpus bad1 >bad.log 2>&1 </dev/null; then
    fail "a cpuset of cpus this VM lacks was accepted"
else
    left=$(systemctl list-units --all --no-legend 'rcontain-bad*' | tr '\n' ' ')
    if [ "$(wc -l <bad.log)" = 1 ] && [ -z "$left" ] && ! $r state bad1 >/dev/null 2>&1 &&
        ! ls -d /sys/fs/cgroup/system.slice/rcontain-bad1.scope /sys/fs/cgroup/*/system.slice/rcontain-bad1.scope 2>/dev/null; then
        pass "failed create: one line ($(cat bad.log)), no unit, no state, no cgroup"
    else
        fail "failed create left: units '$left', $(cat bad.log | tr '\n' ' ')"
    fi
fi

# An annotation whose value is not GVariant text: one line naming it, nothing left.
if $r --systemd-cgroup run -d --bundle bundle-badannot bad2 >badannot.log 2>&1 </dev/null; then
    fail "an unparseable org.systemd.property annotation was accepted"
elif [ "$(wc -l <badannot.log)" = 1 ] && grep -q 'org.systemd.property.CollectMode' badannot.log &&
    ! $r state bad2 >/dev/null 2>&1 && [ -z "$(systemctl list-units --all --no-legend 'rcontain-bad2*')" ]; then
    pass "bad annotation: one line ($(cat badannot.log)), nothing left"
else
    fail "bad annotation: $(tr '\n' ' ' <badannot.log)"
fi

# No system bus (systemd runs, the bus address leads nowhere): one line, nothing left.
if DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent $r --systemd-cgroup run -d --bundle bundle-rcontain nobus \
    >nobus.log 2>&1 </dev/null; then
    fail "ran without a system bus"
elif [ "$(wc -l <nobus.log)" = 1 ] && grep -q 'D-Bus' nobus.log && ! $r state nobus >/dev/null 2>&1 &&
    [ -z "$(systemctl list-units --all --no-legend 'rcontain-t1*')" ]; then
    pass "without a system bus: one line ($(cat nobus.log)), nothing left"
else
    fail "without a system bus: $(tr '\n' ' ' <nobus.log)"
fi

# Rootless with the user's user@.service delegation (on v1 and hybrid,
# where the user's cgroup2 hierarchy holds no controller to delegate,
# only --systemd-cgroup's refusal).
if [ -d bundle-rootless ]; then
    ./rootless.sh || fails=$((fails + 1))
fi
exit $((fails > 0))
