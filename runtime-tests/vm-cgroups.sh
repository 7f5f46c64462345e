#!/bin/sh
# Run the cgroup integration tests (runtime-tests/cgroups.rs: the library;
# cgroups_cli.rs: the commands with real containers) inside a throwaway VM
# whose /sys/fs/cgroup is pure cgroup v2, with runc for the comparison tests
# and the loop module (block devices for blockIO limits). Extra arguments go
# to the test binaries (a name filter, --nocapture, ...).
# Exit status: 0 when all passed (or no VM runner: "skipped: ..."), 1 when
# any failed, 124/125: VM timeout/failure.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/runtime-tests/vm-lib.sh"
find_vm "$repo" "the cgroup tests on pure cgroup v2"

# The test executables and the rcontain binary they run, as cargo's JSON
# build messages name them. Release by default, as `make test` builds them;
# VM_CGROUPS_PROFILE=debug for a quicker build while developing.
case ${VM_CGROUPS_PROFILE:-release} in
    release) profile=--release ;;
    debug) profile= ;;
    *) echo "vm-cgroups: VM_CGROUPS_PROFILE must be release or debug" >&2; exit 125 ;;
esac
# shellcheck disable=SC2086 # $profile is empty or one flag
built=$(cd "$repo" && cargo test $profile --test cgroups --test cgroups_cli --no-run --message-format=json |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
for name in cgroups cgroups_cli; do
    bin=$(printf '%s\n' "$built" | grep "/${name}-[0-9a-f]*$" | tail -n 1)
    [ -x "$bin" ] || { echo "vm-cgroups: building the $name test binary failed" >&2; exit 125; }
    cp "$bin" "$dir/$name"
done
# the CLI tests run the rcontain binary named by RCONTAIN_BIN
rcontain=${RCONTAIN_BIN:-$(printf '%s\n' "$built" | grep '/rcontain$' | tail -n 1)}
[ -x "$rcontain" ] || { echo "vm-cgroups: no rcontain binary in the build" >&2; exit 125; }
cp "$rcontain" "$dir/rcontain"
with=""
for tool in runc busybox; do
    p=$(command -v "$tool" || true)
    [ -n "$p" ] && with="$with --with $p"
done
# shellcheck disable=SC2086,SC2016 # $with is a list of options; $t is the VM's
"$vm" --mem 1024 --timeout 600 --module loop -e RCONTAIN_BIN=/job/rcontain $with "$dir" -- \
    sh -c 'rc=0; for t in ./cgroups ./cgroups_cli; do "$t" "$@" || rc=1; done; exit $rc' sh "$@"
