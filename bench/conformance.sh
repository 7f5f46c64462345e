#!/bin/bash
# Run an already-built OCI runtime-tools validation suite against runtimes.
#
#   bench/conformance.sh RUNTIME_TOOLS_DIR RUNTIME [RUNTIME...]
#
# RUNTIME_TOOLS_DIR is a checkout of opencontainers/runtime-tools OUTSIDE
# this repository in which `make runtimetest validation-executables` has been
# run (docs/conformance.md). This script only runs it: it never fetches or
# builds that code. Prints one line per test and runtime, then a markdown
# table (also written to $CONFORMANCE_OUT, default conformance-results.md).
# A test passes with at least one `ok`, no `not ok` and exit status 0; a
# "silent pass" (exit 0, no assertion, no "error" diagnostic) is counted
# apart: those tests only speak when the runtime is wrong.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 RUNTIME_TOOLS_DIR RUNTIME [RUNTIME...]" >&2; exit 2; }
suite=$(cd "$1" && pwd); shift
out=${CONFORMANCE_OUT:-$PWD/conformance-results.md}
per_test_timeout=${CONFORMANCE_TIMEOUT:-180}
[ -x "$suite/runtimetest" ] || { echo "$0: $suite/runtimetest missing: build the suite first" >&2; exit 1; }

mapfile -t tests < <(cd "$suite" && ls validation/*/*.t | sort)
[ ${#tests[@]} -gt 0 ] || { echo "$0: no validation/*/*.t in $suite" >&2; exit 1; }

logdir=$(mktemp -d /tmp/conformance.XXXXXX)
declare -A result
# The suite's bundles are /tmp/ocitest*: a runtime that mounts in the
# host's namespace (configs without a mount namespace) and does not clean
# up on delete leaves mounts there.
suite_mounts() { awk '$5 ~ "^/tmp/ocitest" {print $5}' /proc/self/mountinfo | sort; }
suite_mounts > "$logdir/mounts.before"
# Bundle directories the suite itself fails to remove (tests that exit
# through util.Fatal or return before their cleanup), whatever the runtime.
suite_dirs() { find /tmp -maxdepth 1 -name 'ocitest*' -type d | sort; }
suite_dirs > "$logdir/dirs.before"
runtimes=()
for rt in "$@"; do
    # The tests run from the suite's directory: a relative path must not
    # be resolved from there.
    case "$rt" in
        */*) rtpath=$(realpath "$rt") ;;
        *) rtpath=$(command -v "$rt" || echo "$rt") ;;
    esac
    name=$(basename "$rtpath")
    runtimes+=("$name")
    pass=0; silent=0; total=0
    for t in "${tests[@]}"; do
        tname=$(basename "$t" .t)
        log="$logdir/$name.$tname.tap"
        # The suite untars its rootfs and copies runtimetest from the cwd.
        if (cd "$suite" && RUNTIME="$rtpath" timeout -k 10 "$per_test_timeout" "./$t") >"$log" 2>&1; then rc=0; else rc=$?; fi
        oks=$(grep -c '^ok ' "$log" || true)
        noks=$(grep -c '^not ok ' "$log" || true)
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            verdict="TIMEOUT"
        elif [ "$rc" = 0 ] && [ "$noks" = 0 ] && [ "$oks" -gt 0 ]; then
            verdict="pass ($oks)"
            pass=$((pass + 1))
        elif [ "$rc" = 0 ] && [ $((oks + noks)) = 0 ] && ! grep -q '^ *"error":' "$log"; then
            # Some tests (hooks, *_fail) assert nothing: they print an
            # "error" diagnostic or exit non-zero when the runtime is wrong.
            verdict="silent pass (exit 0)"
            silent=$((silent + 1))
        elif [ $((oks + noks)) = 0 ] && grep -q '^ *"error":' "$log"; then
            verdict="FAIL (error diagnostic, no assertion, rc $rc)"
        elif [ $((oks + noks)) = 0 ]; then
            verdict="FAIL (no assertion, rc $rc)"
        else
            verdict="FAIL ($noks/$((oks + noks)) not ok, rc $rc)"
        fi
        result[$name.$tname]=$verdict
        total=$((total + 1))
        printf '%-8s %-40s %s\n' "$name" "$tname" "$verdict"
    done
    result[$name.__total]="$pass/$total"
    result[$name.__silent]="$silent"
    suite_mounts | comm -13 "$logdir/mounts.before" - > "$logdir/$name.mounts-left"
    result[$name.__mounts]=$(wc -l < "$logdir/$name.mounts-left")
    [ "${result[$name.__mounts]}" = 0 ] ||
        echo "$name left ${result[$name.__mounts]} mounts under /tmp/ocitest*: $logdir/$name.mounts-left" >&2
    suite_mounts > "$logdir/mounts.before"
    suite_dirs | comm -13 "$logdir/dirs.before" - > "$logdir/$name.dirs-left"
    result[$name.__dirs]=$(wc -l < "$logdir/$name.dirs-left")
    suite_dirs > "$logdir/dirs.before"
done

{
    printf '| test |'; for n in "${runtimes[@]}"; do printf ' %s |' "$n"; done; echo
    printf '|---|'; for _ in "${runtimes[@]}"; do printf -- '---|'; done; echo
    for t in "${tests[@]}"; do
        tname=$(basename "$t" .t)
        printf '| %s |' "$tname"
        for n in "${runtimes[@]}"; do printf ' %s |' "${result[$n.$tname]}"; done
        echo
    done
    printf '| **passed** |'; for n in "${runtimes[@]}"; do printf ' **%s** |' "${result[$n.__total]}"; done; echo
    printf '| silent passes |'; for n in "${runtimes[@]}"; do printf ' %s |' "${result[$n.__silent]}"; done; echo
    printf '| mounts left in the host namespace |'; for n in "${runtimes[@]}"; do printf ' %s |' "${result[$n.__mounts]}"; done; echo
    printf '| /tmp/ocitest* dirs left |'; for n in "${runtimes[@]}"; do printf ' %s |' "${result[$n.__dirs]}"; done; echo
} > "$out"
echo
cat "$out"
echo "TAP logs: $logdir"
