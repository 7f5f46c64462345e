#!/bin/sh
# Runs INSIDE a probe container (busybox sh): prints what the container
# observes, one "key: value" line each, in a fixed order. Only what is the
# same on every run of the same bundle on the same host is printed (no
# pids, inode or mount ids, times): the matrix compares these lines.
o() { printf '%s: %s\n' "$1" "$2"; }
echo "probe: started"
o id "$(id)"
for f in Uid Gid Groups CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs Seccomp Seccomp_filters; do
    o "status.$f" "$(sed -n "s/^$f:[[:space:]]*//p" /proc/self/status | tr -s ' \t' ' ')"
done
for m in uid_map gid_map setgroups; do
    o "$m" "$(tr -s ' \n' ' ' < /proc/self/$m)"
done
# every limit, as the kernel shows it (soft hard)
sed 1d /proc/self/limits | sed 's/  \+/|/g' | while IFS='|' read -r name soft hard _; do
    o "rlimit.$name" "$soft $hard"
done
# mounts: mount point, type, per-mount and superblock options (the source
# and ids are per-host or per-run)
while read -r _ _ _ root mp opts rest; do
    super=${rest#*- }
    set -- $super
    o "mount.$mp" "$1 root=$root $opts $3"
done < /proc/self/mountinfo
find /dev -xdev | sort | while read -r f; do
    if [ -L "$f" ]; then
        o "dev.$f" "-> $(readlink "$f")"
    else
        o "dev.$f" "$(stat -c '%F %a %u:%g %t:%T' "$f")"
    fi
done
o hostname "$(hostname)"
# the terminal (process.terminal): which of fds 0-2 are one and which, the
# controlling terminal (tty_nr of /proc/self/stat, a device number),
# whether this process group owns its foreground, and its settings (the
# fds of this shell, $$: a command substitution's stdout is a pipe)
for n in 0 1 2; do
    if [ -t $n ]; then o "tty.fd$n" "$(readlink /proc/$$/fd/$n)"; else o "tty.fd$n" "not a tty"; fi
done
o tty "$(tty 2>&1)"
read -r st < /proc/self/stat
# shellcheck disable=SC2086 # split into the fields after "(comm) "
set -- ${st##*) }
o tty.ctty "$(($5 >> 8 & 0xfff)):$(($5 & 0xff | ($5 >> 12 & 0xfff00)))"
if [ "$6" = "$3" ]; then o tty.foreground yes; else o tty.foreground no; fi
# (busybox stty fails to read a 0x0 window size: the runtime copies its
# caller's, and script(1) has none to give)
[ -t 0 ] && o tty.stty "$(stty -a 2>/dev/null | tr -s '\n; ' ' ')"
env | sort | while IFS= read -r line; do o "env.${line%%=*}" "${line#*=}"; done
o cwd "$(pwd)"
o umask "$(umask)"
# masked paths: what reading them gives
for p in /proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats \
    /proc/timer_list /proc/timer_stats /proc/sched_debug /proc/scsi /sys/firmware; do
    if [ ! -e "$p" ]; then v=absent
    elif [ -d "$p" ]; then v="dir of $(ls -A "$p" 2>&1 | wc -l) entries"
    elif v=$(head -c 64 "$p" 2>&1); then v="read $(printf %s "$v" | wc -c) bytes"
    else v="error: ${v##*: }"
    fi
    o "masked.$p" "$v"
done
# writes the container must not be able to make
for p in /proc/sys/kernel/domainname /proc/sysrq-trigger /sys/kernel/uevent_helper /etc/probe-write; do
    if (printf '' > "$p") 2>/dev/null; then o "write.$p" allowed; else o "write.$p" refused; fi
done
o "mkdir./tmp" "$(mkdir /tmp/probe-dir 2>&1 && echo ok)"
o "chmod./tmp" "$(chmod 700 /tmp 2>&1 && echo ok)"
for d in /dev/probe-allowed /dev/probe-denied; do
    [ -e "$d" ] && o "open.$d" "$( (head -c 1 "$d" >/dev/null && echo ok) 2>&1 | sed 's/.*: //')"
done
o cgroup "$(tr '\n' ' ' < /proc/self/cgroup)"
# the limits of the container's own cgroup, as numbers that mean the same
# on v1 and v2 ("max" for none). The cgroup mount may show the container's
# cgroup (a bind) or the hierarchy's root, and v1 controllers may share a
# hierarchy (cpu,cpuacct): the directory is the mount point of the
# controller's hierarchy plus the container's path below that mount's root.
c=/sys/fs/cgroup
# cgdir CONTROLLER (empty: cgroup2)
cgdir() {
    set -- "$(awk -v want="$1" '{
        for (i = 7; $i != "-"; i++) ;
        if (want == "" && $(i + 1) == "cgroup2") print $5, $4
        if (want != "" && $(i + 1) == "cgroup" && ("," $(i + 3) ",") ~ ("," want ",")) print $5, $4
    }' /proc/self/mountinfo | tail -n 1)" "$1"
    mp=${1%% *} r=${1#* }
    p=$(awk -F: -v want="$2" '("," $2 ",") ~ ("," want ",") { print $3 }' /proc/self/cgroup | head -n 1)
    [ "$r" = / ] && r=
    echo "$mp${p#"$r"}"
}
rd() { cat "$1" 2>/dev/null || echo none; }
if [ -f $c/cgroup.controllers ]; then
    o cgroup.version 2
    d=$(cgdir '')
    o limit.memory "$(rd "$d/memory.max")"
    o limit.swap "$(rd "$d/memory.swap.max")"
    o limit.pids "$(rd "$d/pids.max")"
    o limit.cpu "$(rd "$d/cpu.max")"
    o limit.cpuweight "$(rd "$d/cpu.weight")"
elif [ -d $c/memory ] || [ -d $c/pids ]; then
    o cgroup.version 1
    d=$(cgdir memory)
    mem=$(rd "$d/memory.limit_in_bytes")
    [ "$mem" = 9223372036854771712 ] && mem=max
    o limit.memory "$mem"
    sw=$(rd "$d/memory.memsw.limit_in_bytes")
    if [ "$sw" = 9223372036854771712 ]; then sw=max
    elif [ "$sw" != none ] && [ "$mem" != max ]; then sw=$((sw - mem)); fi
    o limit.swap "$sw"
    o limit.pids "$(rd "$(cgdir pids)/pids.max")"
    d=$(cgdir cpu)
    q=$(rd "$d/cpu.cfs_quota_us")
    [ "$q" = -1 ] && q=max
    o limit.cpu "$q $(rd "$d/cpu.cfs_period_us")"
    s=$(rd "$d/cpu.shares")
    # the OCI conversion of shares to cgroup v2's weight
    [ "$s" != none ] && s=$((1 + ((s - 2) * 9999) / 262142))
    o limit.cpuweight "$s"
else
    o cgroup.version none
fi
o "probe" "exit ${PROBE_EXIT:-0}"
exit "${PROBE_EXIT:-0}"
