#!/bin/sh
# Run every probe bundle in BUNDLES with RUNTIME (rcontain or runc: the
# same CLI) and print what each container observed, then what
# `rcontain check` predicted for it. POSIX sh: runs on the host and
# inside the VMs (dash, busybox).
#
#   runtime-tests/hosts/probe.sh RUNTIME RCONTAIN BUNDLES [ID-PREFIX]
#
# A bundle whose config asks for a terminal runs under script(1), which
# gives the runtime a terminal to relay; a directory holding a file
# `image` (an image reference, relative to the current directory) instead
# of a bundle is run with `run --image` (rcontain only: runc gets the
# image unpacked into a bundle) from a store next to BUNDLES, removed
# afterwards.
#
# Output, per bundle: "=== BUNDLE", the container's lines (carriage
# returns removed: a terminal ends lines with CR LF; and the NUL the
# relayed terminal starts with), the runtime's stderr
# as "stderr: ..." lines, "runtime: exit N", the hooks' log, then
# "=== check BUNDLE" and check's JSON findings, "check: exit N".
set -u
runtime=$1 rcontain=$2 bundles=$3 prefix=${4:-probe}
store=$bundles.store
for b in "$bundles"/*/; do
    b=${b%/}
    name=${b##*/}
    id=$prefix-$name
    echo "=== $name"
    # deterministic ids: they show in the container's cgroup path
    if [ -f "$b/image" ]; then
        "$runtime" --store "$store" run --image "$(cat "$b/image")" "$id" \
            >"$b/.stdout" 2>"$b/.stderr" </dev/null
        rc=$?
    elif grep -q '"terminal": *true' "$b/config.json"; then
        # script(1) types a NUL into the runtime's terminal (raw by then)
        # when its stdin ends: the container's terminal echoes it as "^@"
        { script -qec "'$runtime' run --bundle '$b' '$id' 2>'$b/.stderr'" /dev/null \
            </dev/null; echo $? >"$b/.rc"; } | sed 's/\^@//g' >"$b/.stdout"
        rc=$(cat "$b/.rc")
    else
        "$runtime" run --bundle "$b" "$id" >"$b/.stdout" 2>"$b/.stderr" </dev/null
        rc=$?
    fi
    tr -d '\r\000' < "$b/.stdout"
    sed 's/^/stderr: /' "$b/.stderr"
    echo "runtime: exit $rc"
    [ -f "$b/hooks.log" ] && cat "$b/hooks.log"
    "$runtime" delete -f "$id" >/dev/null 2>&1
    echo "=== check $name"
    if [ -f "$b/image" ]; then
        "$rcontain" check "$(cat "$b/image")" --format json
    else
        "$rcontain" check --bundle "$b" --format json
    fi
    echo "check: exit $?"
done
rm -rf "$store"
