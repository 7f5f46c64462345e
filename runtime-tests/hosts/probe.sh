#!/bin/sh
# Run every probe bundle in BUNDLES with RUNTIME (rcontain or runc: the
# same CLI) and print what each container observed, then what
# `rcontain check --bundle` predicted for it. POSIX sh: runs on the host
# and inside the VMs (dash, busybox).
#
#   runtime-tests/hosts/probe.sh RUNTIME RCONTAIN BUNDLES [ID-PREFIX]
#
# Output, per bundle: "=== BUNDLE", the container's lines, the runtime's
# stderr as "stderr: ..." lines, "runtime: exit N", the hooks' log, then
# "=== check BUNDLE" and check's JSON findings, "check: exit N".
set -u
runtime=$1 rcontain=$2 bundles=$3 prefix=${4:-probe}
for b in "$bundles"/*/; do
    b=${b%/}
    name=${b##*/}
    echo "=== $name"
    # deterministic ids: they show in the container's cgroup path
    "$runtime" run --bundle "$b" "$prefix-$name" 2>"$b/.stderr" </dev/null
    rc=$?
    sed 's/^/stderr: /' "$b/.stderr"
    echo "runtime: exit $rc"
    [ -f "$b/hooks.log" ] && cat "$b/hooks.log"
    "$runtime" delete -f "$prefix-$name" >/dev/null 2>&1
    echo "=== check $name"
    "$rcontain" check --bundle "$b" --format json
    echo "check: exit $?"
done
