#!/bin/bash
# Build the host matrix's images into CACHE, as OCI image layouts (tag
# "latest"), with umoci:
#
#   python  the application image: Debian's python3 and its dependency
#           closure for this architecture (`apt-get download`, `dpkg-deb
#           -x`), in three layers (libraries, the interpreter, the app);
#           the app (app.py) prints the interpreter's version and what it
#           sees, and exits with PROBE_EXIT
#   layers  16 layers (busybox, then one file each): more than overlayfs
#           takes without "lowerdir+" (Linux 6.8) in rcontain's option
#
# An image is rebuilt only when what goes into it changed (the packages'
# versions, app.py, this script), so a matrix run builds it once and
# later runs reuse it. CACHE must not be in the repository's tracked tree
# (the matrix uses target/hosts-images).
#
#   runtime-tests/hosts/images.sh CACHE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$1
mkdir -p "$cache"
command -v umoci >/dev/null || apt-get install -y -q umoci >/dev/null

# closure PKG...: the packages PKG needs, with themselves (Depends and
# Pre-Depends, the first alternative of each, a virtual package's first
# provider), as NAME=VERSION lines
closure() {
    local -A seen=()
    local todo=("$@") p
    while [ ${#todo[@]} -gt 0 ]; do
        p=${todo[0]}
        todo=("${todo[@]:1}")
        [ -n "${seen[$p]:-}" ] && continue
        seen[$p]=1
        # "|Depends: A" then "  Depends: B": A or B, take A; "<V>" is
        # virtual, its providers follow indented
        while read -r d; do
            [ -n "${seen[$d]:-}" ] || todo+=("$d")
        done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances "$p" | awk '
            virt { if ($0 ~ /^    /) { print $1; virt = 0; next } virt = 0 }
            /^ *\|?(Pre)?Depends:/ {
                alt = skip; skip = ($1 ~ /^\|/)
                if (alt) next
                if ($2 ~ /^</) { virt = 1; next }
                sub(/:any$/, "", $2); print $2
            }')
    done
    for p in "${!seen[@]}"; do
        echo "$p=$(apt-cache policy "$p" | awk '$1 == "Candidate:" { print $2 }')"
    done | sort
}

# fresh NAME KEY: whether $cache/NAME was built from what KEY sums up
fresh() {
    [ -f "$cache/$1/.key" ] && [ "$(cat "$cache/$1/.key")" = "$2" ]
}

# start LAYOUT BUNDLE: an empty image, unpacked at BUNDLE to add layers to
start() {
    umoci init --layout "$1"
    umoci new --image "$1:latest"
    umoci unpack --image "$1:latest" "$2" >/dev/null
}
# layer LAYOUT BUNDLE DIR WHAT: a layer adding DIR's tree (umoci repack:
# names relative to the root, as the image-spec has them)
layer() {
    cp -a "$3/." "$2/rootfs/"
    umoci repack --refresh-bundle --history.created_by "$4" --image "$1:latest" "$2"
}

pkgs=$(closure python3)
key=$(printf '%s\n' "$pkgs" | cat - "$here/app.py" "$0" | sha256sum | cut -c1-16)
if ! fresh python "$key"; then
    work=$(mktemp -d "$cache/.python.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    mkdir "$work/debs" "$work/libs" "$work/python" "$work/app"
    # shellcheck disable=SC2046 # one word each
    (cd "$work/debs" && apt-get -o APT::Sandbox::User=root -q download $(printf '%s\n' "$pkgs") >/dev/null)
    for d in "$work"/debs/*.deb; do
        case ${d##*/} in
            python3*|libpython3*) dpkg-deb -x "$d" "$work/python" ;;
            *) dpkg-deb -x "$d" "$work/libs" ;;
        esac
    done
    # what a slim image leaves out (dpkg's path-exclude in Debian's slim
    # images): documentation and translations
    for l in libs python; do
        rm -rf "$work/$l"/usr/share/{doc,man,info,locale,lintian}
    done
    install -D -m 644 "$here/app.py" "$work/app/app/app.py"
    printf '%s\n' "$pkgs" > "$work/app/app/packages"
    l=$work/image
    start "$l" "$work/bundle"
    for layer in libs python app; do
        layer "$l" "$work/bundle" "$work/$layer" "$layer"
    done
    umoci config --image "$l:latest" --config.entrypoint python3 --config.entrypoint /app/app.py \
        --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env LANG=C.UTF-8 \
        --config.env PROBE_EXIT=3 --config.workingdir /app --config.user 1000:1000 \
        --config.volume /data --config.exposedports 8000/tcp
    umoci gc --layout "$l"
    echo "$key" > "$l/.key"
    rm -rf "${cache:?}/python"
    mv "$l" "$cache/python"
    rm -rf "$work"
    trap - EXIT
fi

key=$(cat "$0" /bin/busybox | sha256sum | cut -c1-16)
if ! fresh layers "$key"; then
    work=$(mktemp -d "$cache/.layers.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    "$here/../../bundles/make-bundle.sh" "$work/bundle" >/dev/null
    l=$work/image
    start "$l" "$work/umoci"
    layer "$l" "$work/umoci" "$work/bundle/rootfs" busybox
    for i in $(seq 2 16); do
        mkdir -p "$work/$i/layers"
        echo "$i" > "$work/$i/layers/$i"
        layer "$l" "$work/umoci" "$work/$i" "layer $i"
    done
    umoci config --image "$l:latest" --config.entrypoint /bin/sh --config.cmd -c \
        --config.cmd 'echo "probe: started"; echo "layers: $(ls /layers | sort -n | tr "\n" " ")"; echo "cgroup: $(tr "\n" " " < /proc/self/cgroup)"; echo "probe: exit 3"; exit 3'
    umoci gc --layout "$l"
    echo "$key" > "$l/.key"
    rm -rf "${cache:?}/layers"
    mv "$l" "$cache/layers"
    rm -rf "$work"
    trap - EXIT
fi
