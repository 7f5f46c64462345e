#!/bin/bash
# Run runtime-tests suites inside a VM flavour of the host matrix: the
# test binaries as `make test` builds them (dev profile, `cargo test
# --no-run`) and the rcontain binary under test are copied into the VM
# with the repository's bundles/ (the tests build their busybox bundles
# with bundles/make-bundle.sh, by its path on this machine) and run there
# one after the other.
#
#   runtime-tests/hosts/suites.sh OUT VM FLAVOUR SUITE...
#
# VM: the runner (run-in-vm.sh); FLAVOUR: v2 v1 hybrid systemd cloud;
# RCONTAIN_BIN: the runtime (default target/release/rcontain). Writes the
# suites' output to OUT/FLAVOUR.txt and one line per suite to
# OUT/FLAVOUR.tsv: SUITE, passed, failed, ignored, seconds
# ("-" when the suite did not finish), and the failed tests to
# OUT/FLAVOUR.failed: SUITE, TEST. Exit status: 0 when every suite
# passed, 1 when one failed, 125 when the VM or the build failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$1 vm=$2 flavour=$3
shift 3
rcontain=${RCONTAIN_BIN:-$repo/target/release/rcontain}
mkdir -p "$out"

args=()
for s in "$@"; do args+=(--test "$s"); done
built=$(cd "$repo" && cargo test --no-run "${args[@]}" --message-format=json 2>"$out/$flavour.build" |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p') || { cat "$out/$flavour.build" >&2; exit 125; }
job=$(mktemp -d)
trap 'rm -rf "$job"' EXIT
for s in "$@"; do
    bin=$(printf '%s\n' "$built" | grep "/deps/${s}-[0-9a-f]*$" | tail -n 1)
    [ -x "$bin" ] || { echo "suites: no test binary for $s" >&2; exit 125; }
    # without their debug info (over 50 MiB each): the job is in guest RAM
    strip --strip-debug -o "$job/$s" "$bin"
done
cp "$rcontain" "$job/rcontain"
# fuzz runs the dev build (CARGO_BIN_EXE_rcontain) by its path here
dev=$(printf '%s\n' "$built" | grep '/debug/rcontain$' | tail -n 1)
[ -x "$dev" ] && strip --strip-debug -o "$job/rcontain-dev" "$dev"

opts=()
case $flavour in
    v2|v1|hybrid) opts=(--cgroup "$flavour") ;;
    systemd) opts=(--systemd) ;;
    cloud)
        opts=(--cgroup v2)
        k=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
        export RCONTAIN_VM_DEBIAN_KERNEL=$k ;;
    *) echo "suites: unknown flavour $flavour" >&2; exit 125 ;;
esac
# the host tools the tests use (busybox: make-bundle.sh's rootfs, not in
# the systemd flavour's Debian userland; strace: security_mounts stages
# its race with it)
with=()
for tool in busybox runc crun jq install unshare nsenter ip strace; do
    p=$(command -v "$tool") && with+=(--with "$p")
done
# image: its example images are built here (bundles/make-images.sh needs
# python3 and zstd, which the VMs lack; the script makes the same bytes
# anywhere) and named by RCONTAIN_TEST_IMAGES; umoci and skopeo (with the
# signature policy it reads) are the tests' references
case " $* " in
    *" image "*)
        "$repo/bundles/make-images.sh" "$job/test-images" > "$out/$flavour.images" 2>&1 ||
            { cat "$out/$flavour.images" >&2; exit 125; }
        opts+=(-e RCONTAIN_TEST_IMAGES=/job/test-images --module ext4 --module crc32c_generic)
        for p in "$(command -v umoci)" "$(command -v skopeo)" /etc/containers/policy.json \
            "$(command -v mkfs.ext4)"; do
            [ -e "$p" ] && with+=(--with "$p")
        done ;;
esac
# The tests name bundles/ and the fuzz corpus by this checkout's path,
# which may be under /tmp (the VM mounts its own there): they travel in the
# job and are put back at that path inside the VM. The tests' temp dir
# (CARGO_TARGET_TMPDIR) is this checkout's target/tmp.
mkdir -p "$job/checkout/runtime-tests"
cp -a "$repo/bundles" "$job/checkout/"
cp -a "$repo/runtime-tests/fuzz-corpus" "$job/checkout/runtime-tests/"
# shellcheck disable=SC2016 # expanded in the VM
"$vm" -q --mem 2048 --timeout 1800 --module loop -e RCONTAIN_BIN=/job/rcontain \
    "${with[@]}" "${opts[@]}" "$job" -- \
    sh -c 'mkdir -p "$1/target/tmp" "$1/target/debug" && cp -a /job/checkout/. "$1/"
        [ -x rcontain-dev ] && ln -s /job/rcontain-dev "$1/target/debug/rcontain"
        shift; rc=0
        for t in "$@"; do
            echo "##### suite $t"
            s=$(date +%s)
            tmp= lim=600
            # image unpacks user.* xattrs, which tmpfs (the root of the VM and
            # /tmp) holds only from Linux 6.6 on: its temp dirs go on ext4;
            # skopeo writes to /var/tmp; it takes 8 to 9 min in the v2 VM
            if [ "$t" = image ]; then
                lim=900
                mkdir -p /scratch /var/tmp && truncate -s 1G /scratch.img &&
                    mkfs.ext4 -q /scratch.img && mount -t ext4 -o loop /scratch.img /scratch &&
                    tmp=TMPDIR=/scratch || { echo "suites: no ext4 scratch for image"; continue; }
            fi
            # a hung suite ends as "did not finish", not the whole run
            timeout $lim env $tmp ./"$t" --test-threads=2 2>&1 || rc=1
            echo "##### took $(($(date +%s) - s))"
        done; exit $rc' sh "$repo" "$@" > "$out/$flavour.txt" 2>&1
rc=$?
[ "$rc" -ge 124 ] && { tail -n 30 "$out/$flavour.txt" >&2; exit 125; }
awk '
    function flush() { if (s != "") print s "\t" (r ? p "\t" f "\t" i : "-\t-\t-") "\t" (t != "" ? t : "-") }
    /^##### suite / { flush(); s = $3; r = 0; t = "" }
    /^##### took / { t = $3 }
    /^test result:/ { r = 1; p = $4; f = $6; i = $8; sub(/;/, "", p); sub(/;/, "", f); sub(/;/, "", i) }
    END { flush() }' "$out/$flavour.txt" > "$out/$flavour.tsv"
awk '/^##### suite / { s = $3 } /^test .* \.\.\. FAILED$/ { print s "\t" $2 }' \
    "$out/$flavour.txt" > "$out/$flavour.failed"
exit $((rc != 0))
