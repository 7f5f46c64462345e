#!/bin/bash
# Build an OCI bundle (rootfs/ + config.json) from Debian's busybox-static.
#
#   bundles/make-bundle.sh OUT [ARG...]
#
# OUT/rootfs gets the static busybox, one symlink per applet, a minimal
# /etc/passwd and /etc/group; OUT/config.json is bundles/config.template.json
# with process.args replaced by ARG... (default: sh -c 'echo hello from rcontain').
# The result depends only on the busybox binary and the template: every file
# gets the same fixed mtime, so two builds are identical.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
template="$here/config.template.json"
busybox=${BUSYBOX:-/bin/busybox}
epoch=${SOURCE_DATE_EPOCH:-0}

[ $# -ge 1 ] || { echo "usage: $0 OUT [ARG...]" >&2; exit 2; }
out=$1; shift
[ $# -gt 0 ] || set -- sh -c 'echo hello from rcontain'

if ! [ -x "$busybox" ]; then
    echo "$0: $busybox not found; install it with: apt-get install -y busybox-static" >&2
    exit 1
fi
# A dynamically linked busybox would need the host's libc inside the rootfs.
if command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; then
    echo "$0: $busybox is not statically linked (need Debian's busybox-static)" >&2
    exit 1
fi
command -v jq >/dev/null || { echo "$0: jq not found; apt-get install -y jq" >&2; exit 1; }

rootfs="$out/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs"/{bin,dev,etc,home,proc,root,run,sys,tmp,usr,var/tmp}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
chmod 700 "$rootfs/root"
install -m 755 "$busybox" "$rootfs/bin/busybox"
ln -s ../bin "$rootfs/usr/bin"
ln -s ../bin "$rootfs/usr/sbin"
ln -s bin "$rootfs/sbin"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done

cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
GROUP
: > "$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n' > "$rootfs/etc/hosts"

# jq's --args would swallow option-like arguments such as "-c", so the
# arguments travel NUL-separated on stdin instead.
printf '%s\0' "$@" | jq -Rs --slurpfile t "$template" \
    '. as $in | $t[0] | .process.args = ($in | rtrimstr("\u0000") | split("\u0000"))' \
    > "$out/config.json"

find "$out" -exec touch -h -d "@$epoch" {} +
