#!/bin/sh
# Run the cgroup integration tests (runtime-tests/cgroups.rs: the library;
# cgroups_cli.rs: the commands with real containers) inside a throwaway VM
# whose /sys/fs/cgroup is pure cgroup v2, with runc for the comparison tests
# and the loop module (block devices for blockIO limits). Extra arguments go
# to the test binaries (a name filter, --nocapture, ...).
# Exit status: 0 when all passed, 1 when any failed, 124/125: VM timeout/failure.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
vm=${RCONTAIN_VM:-}
if [ -z "$vm" ]; then
    for c in "$repo/../shared/vm/run-in-vm.sh" "$repo/../../shared/vm/run-in-vm.sh" /work/shared/vm/run-in-vm.sh; do
        if [ -x "$c" ]; then vm=$c; break; fi
    done
fi
[ -n "$vm" ] || { echo "vm-cgroups: run-in-vm.sh not found (set RCONTAIN_VM)" >&2; exit 125; }

# the test executables cargo builds, named by its JSON build messages
built=$(cd "$repo" && cargo test --test cgroups --test cgroups_cli --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
for name in cgroups cgroups_cli; do
    bin=$(printf '%s\n' "$built" | grep "/${name}-[0-9a-f]*$" | tail -n 1)
    [ -x "$bin" ] || { echo "vm-cgroups: building the $name test binary failed" >&2; exit 125; }
    cp "$bin" "$dir/$name"
done
# the CLI tests run the rcontain binary from the path cargo compiled in
with="--with $repo/target/debug/rcontain"
for tool in runc busybox; do
    p=$(command -v "$tool" || true)
    [ -n "$p" ] && with="$with --with $p"
done
# shellcheck disable=SC2086,SC2016 # $with is a list of options; $t is the VM's
"$vm" --mem 1024 --timeout 600 --module loop $with "$dir" -- \
    sh -c 'rc=0; for t in ./cgroups ./cgroups_cli; do "$t" "$@" || rc=1; done; exit $rc' sh "$@"
