#!/usr/bin/env bash
# bench-unpack.sh [WORKDIR]   (default /var/tmp/rcontain-bench)
#
# Unpack speed and memory, rcontain vs umoci, on a large image: a Debian
# bookworm minbase rootfs (debootstrap, cached in WORKDIR) split into three
# layers (usr/lib, the rest of usr, everything else), as gzip layers (both
# tools) and zstd layers (rcontain only: umoci 0.4 reads no zstd).
# Each case runs RUNS times (default 3) on a warm page cache; the median
# wall time and the largest peak RSS (/usr/bin/time -v) are printed.
# Bundles are written to each of OUTS (default: /dev/shm, a tmpfs, which
# measures the unpackers themselves, and WORKDIR, the disk, where inode
# creation in the filesystem can dominate both).
# Needs root (ownership, devices), debootstrap, GNU time, jq, zstd, umoci.
set -euo pipefail

W=${1:-/var/tmp/rcontain-bench}
RUNS=${RUNS:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
RCONTAIN=${RCONTAIN:-$HERE/target/release/rcontain}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

need() { command -v "$1" >/dev/null 2>&1 || apt-get install -y -q "$2" >/dev/null; }
need debootstrap debootstrap
need jq jq
need zstd zstd
need umoci umoci
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null
[ -x "$RCONTAIN" ] || { echo "build rcontain first (cargo build --release) or set RCONTAIN" >&2; exit 1; }

mkdir -p "$W"
R=$W/rootfs
if [ ! -e "$R/.complete" ]; then
    rm -rf "$R"
    debootstrap --variant=minbase bookworm "$R" "$MIRROR" >"$W/debootstrap.log" 2>&1 ||
        { echo "debootstrap failed, see $W/debootstrap.log" >&2; exit 1; }
    touch "$R/.complete"
fi

TAR=(tar --sort=name --numeric-owner --xattrs --xattrs-include='*' --format=posix
     --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$R")
sha() { sha256sum "$1" | cut -d' ' -f1; }

# layout DIR COMPRESSION(gzip|zstd): an OCI layout of the three layer tars.
layout() {
    local L=$1 c=$2 mt ext descs=() diffs=()
    rm -rf "$L"; mkdir -p "$L/blobs/sha256"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
    for t in "$W"/l1.tar "$W"/l2.tar "$W"/l3.tar; do
        case $c in
            gzip) gzip -n -6 -c "$t" >"$L/tmp"; mt=application/vnd.oci.image.layer.v1.tar+gzip ;;
            zstd) zstd -q -3 -T2 -c "$t" >"$L/tmp"; mt=application/vnd.oci.image.layer.v1.tar+zstd ;;
        esac
        local d; d=$(sha "$L/tmp")
        descs+=("$(jq -cn --arg m "$mt" --arg d "sha256:$d" --argjson s "$(stat -c %s "$L/tmp")" \
            '{mediaType:$m,digest:$d,size:$s}')")
        diffs+=("\"sha256:$(sha "$t")\"")
        mv "$L/tmp" "$L/blobs/sha256/$d"
    done
    local cfg mf
    cfg=$(jq -cn --argjson d "[$(IFS=,; echo "${diffs[*]}")]" \
        '{architecture:"amd64",os:"linux",config:{Cmd:["/bin/bash"]},rootfs:{type:"layers",diff_ids:$d}}')
    printf '%s' "$cfg" >"$L/tmp"; local cd; cd=$(sha "$L/tmp"); local cs; cs=$(stat -c %s "$L/tmp")
    mv "$L/tmp" "$L/blobs/sha256/$cd"
    mf=$(jq -cn --arg cd "sha256:$cd" --argjson cs "$cs" --argjson l "[$(IFS=,; echo "${descs[*]}")]" \
        '{schemaVersion:2,mediaType:"application/vnd.oci.image.manifest.v1+json",
          config:{mediaType:"application/vnd.oci.image.config.v1+json",digest:$cd,size:$cs},layers:$l}')
    printf '%s' "$mf" >"$L/tmp"; local md; md=$(sha "$L/tmp"); local ms; ms=$(stat -c %s "$L/tmp")
    mv "$L/tmp" "$L/blobs/sha256/$md"
    jq -cn --arg d "sha256:$md" --argjson s "$ms" '{schemaVersion:2,manifests:[{
        mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$d,size:$s,
        annotations:{"org.opencontainers.image.ref.name":"latest"}}]}' >"$L/index.json"
}

if [ ! -e "$W/img-zstd/index.json" ]; then
    "${TAR[@]}" -cf "$W/l1.tar" ./usr/lib
    "${TAR[@]}" -cf "$W/l2.tar" --exclude=./usr/lib ./usr
    "${TAR[@]}" -cf "$W/l3.tar" --exclude=./usr --exclude=./.complete .
    layout "$W/img-gzip" gzip
    layout "$W/img-zstd" zstd
fi

OUTS=${OUTS:-/dev/shm $W}

# measure NAME CMD...: runs CMD (which unpacks into $OUT) RUNS times.
# Every run gets a fresh $OUT: the previous ones are only moved aside and
# removed when the section is done, because on a journal-less ext4 (this
# VM's disk) creating inodes right after deleting many makes the kernel's
# allocator skip each recently freed one (ialloc.c recently_deleted(), a
# 30 s window), which then costs more than the unpack itself. The dirty
# data of one run is written back (sync) before the next starts.
measure() {
    local name=$1; shift
    local times=() rss=0
    for _ in $(seq "$RUNS"); do
        [ -e "$OUT" ] && mv "$OUT" "$OUT.old.$((++OLD))"
        sync
        /usr/bin/time -v -o "$W/time.txt" "$@" >/dev/null 2>"$W/err.txt" ||
            { cat "$W/err.txt" >&2; echo "FAIL $name" >&2; exit 1; }
        times+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$W/time.txt")")
        local r; r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.txt")
        [ "$r" -gt "$rss" ] && rss=$r
    done
    local med; med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
    printf '%-28s %8.2f s %10d KiB\n' "$name" "$med" "$rss"
    eval "T_${name//[^a-zA-Z0-9]/_}=$med"
}
OLD=0

usize=$(du -sb "$W"/l[123].tar | awk '{s+=$1} END {printf "%.0f", s/1048576}')
gsize=$(du -sb "$W/img-gzip/blobs" | awk '{printf "%.0f", $1/1048576}')
zsize=$(du -sb "$W/img-zstd/blobs" | awk '{printf "%.0f", $1/1048576}')
echo "image: Debian bookworm minbase, 3 layers, ${usize} MiB of tar (gzip ${gsize} MiB, zstd ${zsize} MiB); median of $RUNS runs"
for dir in $OUTS; do
    OUT=$dir/rcontain-bench-out
    fs=$(stat -f -c %T "$dir")
    echo "--- bundle written to $dir ($fs)"
    printf '%-28s %10s %14s\n' "case" "wall" "peak RSS"
    measure "umoci unpack (gzip)" umoci unpack --image "$W/img-gzip:latest" "$OUT"
    measure "rcontain unpack (gzip)" "$RCONTAIN" unpack --quiet "$W/img-gzip:latest" "$OUT"
    measure "rcontain unpack (zstd)" "$RCONTAIN" unpack --quiet "$W/img-zstd:latest" "$OUT"
    awk -v u="$T_umoci_unpack__gzip_" -v r="$T_rcontain_unpack__gzip_" \
        'BEGIN { printf "speed-up over umoci (gzip): %.1fx\n", u / r }'
    rm -rf "$OUT" "$OUT".old.*
done
