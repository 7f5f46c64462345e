#!/bin/bash
# The host matrix (`make test-hosts`): run the probe bundles (bundles.sh)
# with rcontain and runc on this host and on each VM flavour
# (../shared/vm/run-in-vm.sh), compare every flavour's observations with
# the reference (pure cgroup v2 in the VM), check that each difference is
# explained (explained.txt) and that `rcontain check --bundle` predicted
# it, and write docs/hosts.md.
#
#   runtime-tests/hosts/matrix.sh [FLAVOUR...]
#
# FLAVOURs: host v2 v1 hybrid systemd cloud (default: host v2 v1 hybrid;
# `make test-hosts` runs all).
# v2 is the reference and always runs; cloud is v2 on Debian's cloud
# kernel build (linux-image-cloud-amd64). RCONTAIN_BIN: the runtime under
# test (default target/release/rcontain); RUNC: the comparison (runc).
# HOSTS_OUT: where observations go (default target/hosts); HOSTS_DOC: the
# generated document (default docs/hosts.md; "-" for none); HOSTS_IMAGES:
# where the images are built and kept between runs (images.sh; default
# target/hosts-images).
# Exit status: 0 when every difference is explained and check predicted
# every outcome; 1 otherwise; 125 when a VM could not run.
set -uo pipefail
shopt -s extglob
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
rcontain=${RCONTAIN_BIN:-$repo/target/release/rcontain}
runc=${RUNC:-$(command -v runc || true)}
out=${HOSTS_OUT:-$repo/target/hosts}
images=${HOSTS_IMAGES:-$repo/target/hosts-images}
doc=${HOSTS_DOC:-$repo/docs/hosts.md}
ref=v2
[ $# -gt 0 ] || set -- host v2 v1 hybrid
flavours=(v2)
for f in "$@"; do [ "$f" = v2 ] || flavours+=("$f"); done

[ -x "$rcontain" ] || { echo "matrix: no rcontain at $rcontain (make build, or set RCONTAIN_BIN)" >&2; exit 125; }
[ -x "$runc" ] || { echo "matrix: runc not found (set RUNC)" >&2; exit 125; }
. "$repo/runtime-tests/vm-lib.sh"
find_vm "$repo" "the host matrix needs its reference, pure cgroup v2"

# split FLAVOUR's raw output into obs/FLAVOUR/RUNTIME/BUNDLE and
# check/FLAVOUR/BUNDLE.json, normalising what is per run
split() {
    local f=$1
    mkdir -p "$out/obs/$f/rcontain" "$out/obs/$f/runc" "$out/check/$f"
    awk -v d="$out" -v f="$f" '
        /^##### runc$/ { rt = "runc"; next }
        /^check: exit / { next }
        /^=== check / { file = d "/check/" f "/" $3 ".json"; if (rt == "runc") file = "/dev/null"; next }
        /^=== / { file = d "/obs/" f "/" (rt ? rt : "rcontain") "/" $2; next }
        file { print > file }
    ' "$out/raw/$f.txt"
    # runc stamps its errors with the time; the rootfs's path on the host
    # is where this run put the bundle
    sed -i -e 's/^stderr: time="[^"]*" /stderr: /' \
        -e 's|^\(mount\./: [^ ]* root=\)[^ ]*/b-[a-z]*/\([a-z]*\)/rootfs |\1BUNDLE/\2/rootfs |' \
        "$out"/obs/"$f"/*/*
}

runner='./probe.sh ./rcontain ./rcontain b-rcontain; echo "##### runc"; ./probe.sh "$1" ./rcontain b-runc'

# HOSTS_REUSE=1: analyse the raw output of the last run again
job=$out/job
if [ -z "${HOSTS_REUSE:-}" ]; then
    rm -rf "$out"
    mkdir -p "$out"
    mkdir -p "$job"
    install -m 755 "$rcontain" "$job/rcontain"
    install -m 755 "$here/probe.sh" "$job/probe.sh"
    "$here/bundles.sh" "$job/bundles" "$rcontain" || exit 125
    # each runtime gets its own copy: runs write into the bundle (hooks' log)
    cp -a "$job/bundles" "$job/b-rcontain"
    cp -a "$job/bundles" "$job/b-runc"
    rm -rf "$job/bundles"
    # the images: rcontain runs each straight from the image (a directory
    # naming it), runc the bundle `rcontain unpack` makes of it
    "$here/images.sh" "$images" || exit 125
    mkdir "$job/images"
    for i in python layers; do
        cp -a "$images/$i" "$job/images/$i"
        mkdir "$job/b-rcontain/$i"
        echo "images/$i:latest" > "$job/b-rcontain/$i/image"
        (cd "$job" && "$rcontain" unpack --quiet "images/$i:latest" "b-runc/$i") || exit 125
    done
    mkdir -p "$out/raw"
fi
declare -A took
for f in "${flavours[@]}"; do
    if [ -n "${HOSTS_REUSE:-}" ]; then
        took[$f]=$(cat "$out/raw/$f.took")
        split "$f"
        continue
    fi
    start=$(date +%s.%N)
    kernel=
    case $f in
        host)
            rm -rf "$out/hostjob" && cp -a "$job" "$out/hostjob"
            (cd "$out/hostjob" && sh -c "$runner" sh "$runc") > "$out/raw/$f.txt" 2>&1
            rc=$?
            rm -rf "$out/hostjob" ;;
        v2|v1|hybrid) opts=(--cgroup "$f") ;;&
        systemd) opts=(--systemd) ;;&
        cloud)
            opts=(--cgroup v2)
            kernel=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
                awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
            [ -n "$kernel" ] || { echo "matrix: apt-cache knows no linux-image-cloud-amd64" >&2; exit 125; } ;;&
        v2|v1|hybrid|systemd|cloud)
            # script(1): the terminal bundle's runtime gets a terminal
            RCONTAIN_VM_DEBIAN_KERNEL=${kernel:-} "$vm" -q --mem 2048 --timeout 900 \
                --with "$runc" --with "$(command -v script)" "${opts[@]}" "$job" -- \
                sh -c "$runner" sh "$runc" > "$out/raw/$f.txt" 2> "$out/raw/$f.stderr"
            rc=$? ;;
        *) echo "matrix: unknown flavour $f" >&2; exit 125 ;;
    esac
    took[$f]=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
    echo "${took[$f]}" > "$out/raw/$f.took"
    printf 'matrix: %s: %.0f s (exit %s)\n' "$f" "${took[$f]}" "$rc" >&2
    if [ "$rc" -ge 124 ]; then
        echo "matrix: the $f VM failed:" >&2
        cat "$out/raw/$f.stderr" >&2
        exit 125
    fi
    split "$f"
done

# The runtime-tests suites (all but the engines) inside the VM flavours
# (suites.sh): every one on the reference, those whose behaviour depends
# on the cgroup layout, the init system or the kernel build on the others
# (CI's time budget: docs/hosts.md); image (unpacking and the store's
# overlays depend on the kernel, 8 to 11 min each) on the two kernel builds,
# v2 and cloud. HOSTS_SUITES_<FLAVOUR> replaces a flavour's list;
# HOSTS_SUITES=0 runs none. The host runs them all in
# `make test`. A failed test must be explained in suites-explained.txt.
declare -A suites=(
    [v2]="lifecycle errors isolation mountns security security_fds security_misc security_creds security_selfexe security_image security_mounts differential check cgroups cgroups_cli systemd fuzz rootless image"
    [v1]="lifecycle errors isolation mountns security_mounts differential check cgroups cgroups_cli systemd"
    [hybrid]="lifecycle errors isolation mountns security_mounts differential check cgroups cgroups_cli systemd"
    [systemd]="lifecycle errors isolation mountns differential check cgroups_cli"
    [cloud]="lifecycle errors isolation mountns security security_misc security_mounts differential check cgroups_cli image"
)
bad=0
for f in "${flavours[@]}"; do
    [ "${HOSTS_SUITES:-1}" != 0 ] && [ -z "${HOSTS_REUSE:-}" ] || break
    [ "$f" = host ] && continue
    v=HOSTS_SUITES_$f
    list=${!v-${suites[$f]}}
    [ -n "$list" ] || continue
    start=$(date +%s)
    # shellcheck disable=SC2086 # a list of suite names
    "$here/suites.sh" "$out/suites" "$vm" "$f" $list
    rc=$?
    printf 'matrix: %s: the suites took %s s (exit %s)\n' "$f" "$(($(date +%s) - start))" "$rc" >&2
    [ "$rc" -ge 124 ] && { echo "matrix: the $f suites VM failed" >&2; bad=1; }
done
# suite_why FLAVOUR SUITE TEST: why that test fails there (suites-explained.txt)
suite_why() {
    local fg sg tg why
    while IFS=$'\t' read -r fg sg tg why; do
        case $fg in ''|'#'*) continue ;; esac
        # shellcheck disable=SC2053 # the fields are globs
        if [[ $1 == $fg && $2 == $sg && $3 == $tg ]]; then echo "$why"; return 0; fi
    done < "$here/suites-explained.txt"
    return 1
}
for t in "$out"/suites/*.failed; do
    [ -f "$t" ] || continue
    f=$(basename "$t" .failed)
    while IFS=$'\t' read -r suite test; do
        if ! suite_why "$f" "$suite" "$test" >/dev/null; then
            echo "matrix: $f: $suite::$test failed, unexplained (see $out/suites/$f.txt)" >&2
            bad=1
        fi
    done < "$t"
    awk -F'\t' -v f="$f" '$2 == "-" { print "matrix: " f ": the suite " $1 " did not finish" }' \
        "$out/suites/$f.tsv" | grep . >&2 && bad=1
done

# the keys whose lines differ between two observation files
differing_keys() {
    diff <(sort "$1") <(sort "$2") | sed -n 's/^[<>] \([^:]*\):.*/\1/p' | sort -u
}
# whether FLAVOUR's run of BUNDLE with RUNTIME started the container
started() {
    grep -q '^probe: started' "$out/obs/$1/$2/$3"
}
# the keys FLAVOUR's run of BUNDLE with RUNTIME differs in from the
# reference's; where one of the two runs never started its container,
# they differ in "runtime" (its exit status and error) alone
flavour_keys() {
    local o=$out/obs/$1/$2/$3 r=$out/obs/$ref/$2/$3
    if started "$1" "$2" "$3" && started "$ref" "$2" "$3"; then
        differing_keys "$r" "$o"
    elif started "$1" "$2" "$3" || started "$ref" "$2" "$3"; then
        echo runtime
    fi
}
# the explanation of a difference: "KIND REASON" from explained.txt
explain() {
    local f=$1 b=$2 k=$3 fg bg kg kind reason
    while IFS=$'\t' read -r fg bg kg kind reason; do
        case $fg in ''|'#'*) continue ;; esac
        # shellcheck disable=SC2053 # the fields are globs
        if [[ $f == $fg && $b == $bg && $k == $kg ]]; then
            echo "$kind	$reason"
            return 0
        fi
    done < "$here/explained.txt"
    return 1
}
# what check predicted: fails, differs or same (notes do not count)
predicted() {
    local j=$out/check/$1/$2.json
    if jq -e '.findings | any(.kind == "fails")' "$j" >/dev/null; then echo fails
    elif jq -e '.findings | any(.kind == "differs")' "$j" >/dev/null; then echo differs
    else echo same
    fi
}

bundles=$(cd "$out/job/b-runc" && ls)
diffs=$out/differences.tsv
: > "$diffs"
for f in "${flavours[@]}"; do
    [ "$f" = "$ref" ] && continue
    for b in $bundles; do
        for rt in rcontain runc; do
            while read -r k; do
                [ -n "$k" ] || continue
                if e=$(explain "$f" "$b" "$k"); then
                    printf '%s\t%s\t%s\t%s\t%s\n' "$f" "$b" "$rt" "$k" "$e" >> "$diffs"
                    if [ "$rt" = rcontain ] && [ "${e%%	*}" = bug ]; then
                        echo "matrix: $f $b: $k differs from $ref: known rcontain bug (runc does not differ): ${e#*	}" >&2
                    fi
                else
                    printf '%s\t%s\t%s\t%s\tUNEXPLAINED\t\n' "$f" "$b" "$rt" "$k" >> "$diffs"
                    bad=1
                    echo "matrix: $f $b ($rt): $k differs from $ref, unexplained:" >&2
                    diff <(grep "^$k:" "$out/obs/$ref/$rt/$b") <(grep "^$k:" "$out/obs/$f/$rt/$b") | sed 's/^/    /' >&2
                fi
            done <<< "$(flavour_keys "$f" "$rt" "$b")"
        done
    done
done

# rcontain against runc on each flavour: where they differ
vsrunc=$out/vs-runc.tsv
: > "$vsrunc"
for f in "${flavours[@]}"; do
    for b in $bundles; do
        differing_keys "$out/obs/$f/runc/$b" "$out/obs/$f/rcontain/$b" | while read -r k; do
            [ -n "$k" ] && printf '%s\t%s\t%s\n' "$f" "$b" "$k"
        done
    done
done >> "$vsrunc"

# outcome FLAVOUR BUNDLE RUNTIME [KIND...]: the run against the
# reference, counting only differences of other kinds than KIND...: fails
# (the container never started), differs, same, or runs: the reference
# could not make it (its kernel is older than the host's), so there is
# nothing to differ from.
outcome() {
    local f=$1 b=$2 rt=$3
    shift 3
    if ! started "$f" "$rt" "$b"; then echo fails; return; fi
    if ! started "$ref" "$rt" "$b"; then echo runs; return; fi
    awk -F'\t' -v f="$f" -v b="$b" -v rt="$rt" -v skip=" $* " '
        $1 == f && $2 == b && $3 == rt && $4 != "runtime" && index(skip, " " $5 " ") == 0 { n++ }
        END { print n ? "differs" : "same" }' "$diffs"
}

# check's predictions against the outcomes: check speaks for the host and
# for what rcontain does there (known bugs included), not for the machine
# (memory, filesystem, kernel build options); where the reference failed,
# only "it runs" can be checked
# right OUTCOME PREDICTION
right() {
    [ "$1" = "$2" ] || { [ "$1" = runs ] && [ "$2" != fails ]; }
}
pred=$out/check.tsv
: > "$pred"
for f in "${flavours[@]}"; do
    for b in $bundles; do
        o=$(outcome "$f" "$b" rcontain machine) p=$(predicted "$f" "$b")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$f" "$b" "$o" "$p" \
            "$(outcome "$f" "$b" rcontain)" "$(outcome "$f" "$b" runc)" >> "$pred"
        if ! right "$o" "$p"; then
            echo "matrix: $f $b: check predicted $p, observed $o" >&2
            bad=1
        fi
    done
done

[ "$doc" = - ] || "$here/report.sh" "$out" "$ref" "${flavours[*]}" \
    "$(for f in "${flavours[@]}"; do printf '%s=%.0f ' "$f" "${took[$f]}"; done)" > "$doc"
echo "matrix: $(grep -c UNEXPLAINED "$diffs") unexplained differences," \
    "$(awk -F'\t' '$3 == "rcontain" && $5 == "bug"' "$diffs" | cut -f1,2 | sort -u | wc -l) runs with a known rcontain bug," \
    "$(awk -F'\t' '$3 != $4 && !($3 == "runs" && $4 != "fails")' "$pred" | wc -l) wrong predictions; observations in $out" >&2
exit $bad
