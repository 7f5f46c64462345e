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
runtimes=()
for rt in "$@"; do
    rtpath=$(command -v "$rt" || echo "$rt")
    name=$(basename "$rtpath")
    runtimes+=("$name")
    pass=0; total=0
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
        elif [ $((oks + noks)) = 0 ]; then
            verdict="FAIL (aborted before any assertion, rc $rc)"
        else
            verdict="FAIL ($noks/$((oks + noks)) not ok, rc $rc)"
        fi
        result[$name.$tname]=$verdict
        total=$((total + 1))
        printf '%-8s %-40s %s\n' "$name" "$tname" "$verdict"
    done
    result[$name.__total]="$pass/$total"
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
} > "$out"
echo
cat "$out"
echo "TAP logs: $logdir"
