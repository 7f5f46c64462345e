#!/bin/sh
# Run the cgroup integration tests (runtime-tests/cgroups.rs) inside a
# throwaway VM whose /sys/fs/cgroup is pure cgroup v2, with runc for the
# comparison tests and the loop module (block devices for blockIO limits).
# Extra arguments go to the test binary (a name filter, --nocapture, ...). Exit status: the tests' (124/125: VM timeout/failure).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
vm=${RCONTAIN_VM:-}
if [ -z "$vm" ]; then
    for c in "$repo/../shared/vm/run-in-vm.sh" "$repo/../../shared/vm/run-in-vm.sh" /work/shared/vm/run-in-vm.sh; do
        if [ -x "$c" ]; then vm=$c; break; fi
    done
fi
[ -n "$vm" ] || { echo "vm-cgroups: run-in-vm.sh not found (set RCONTAIN_VM)" >&2; exit 125; }

# the test executable cargo builds, named by its JSON build messages
bin=$(cd "$repo" && cargo test --test cgroups --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "vm-cgroups: building the cgroups test binary failed" >&2; exit 125; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
cp "$bin" "$dir/cgroups-tests"
set -- ./cgroups-tests "$@"
with=""
for tool in runc busybox; do
    p=$(command -v "$tool" || true)
    [ -n "$p" ] && with="$with --with $p"
done
# shellcheck disable=SC2086 # $with is a list of options
"$vm" --mem 1024 --timeout 600 --module loop $with "$dir" -- "$@"
