#!/usr/bin/env bash
# make-images.sh [OUTDIR]   (default: bundles/out)
#
# Builds the example images (see images.py for what each holds) from Debian's
# static busybox, reproducibly: running it twice gives the same bytes. Then
# checks every blob against its digest and, when skopeo is present, that
# skopeo can read every image. Idempotent: OUTDIR is rebuilt.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/out}

need() { command -v "$1" >/dev/null 2>&1 || apt-get install -y -q "$2" >/dev/null; }
[ -x /bin/busybox ] || apt-get install -y -q busybox-static >/dev/null
need python3 python3
need zstd zstd
need file file
file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' ||
    { echo "FAIL /bin/busybox is not static (install busybox-static)" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT"
python3 "$HERE/images.py" "$OUT" /bin/busybox

ok=1
for img in hello layers; do
    for b in "$OUT/$img"/oci/blobs/sha256/*; do
        [ "$(sha256sum "$b" | cut -d' ' -f1)" = "$(basename "$b")" ] ||
            { echo "FAIL bad blob digest $b" >&2; ok=0; }
    done
    if command -v skopeo >/dev/null 2>&1; then
        for ref in "oci:$OUT/$img/oci:latest" "oci-archive:$OUT/$img/oci.tar:latest" \
                   "docker-archive:$OUT/$img/docker-archive.tar"; do
            skopeo inspect --raw "$ref" >/dev/null 2>&1 || { echo "FAIL skopeo cannot read $ref" >&2; ok=0; }
        done
    fi
done
[ $ok = 1 ] || exit 1
echo "PASS images built in $OUT: hello, layers (tags latest, multi, gzip)"
