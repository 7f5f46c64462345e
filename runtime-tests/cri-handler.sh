#!/usr/bin/env bash
# runtime-tests/cri-handler.sh RUNTIME_BINARY
#
# Tests docs/kubernetes.md: starts a private containerd (CRI plugin enabled)
# whose config contains the runtime-handler block taken verbatim from
# docs/kubernetes.md (only BinaryName changed, to a logging wrapper around
# RUNTIME_BINARY, and Root added, a private state dir), and runs a pod
# through that handler over the CRI API as a kubelet would
# (runtime-tests/cri_client.py). Prints PASS/FAIL lines; exits 1 on any FAIL.
#
# Debian packages: containerd, python3-grpcio, umoci, jq, busybox-static.
# Env: BUSYBOX_IMAGE_DIR (image from shared/clients/make-busybox-image.sh;
#      built here when unset, with CLIENTS=dir or shared/ beside the repo),
#      KEEP=1 (keep the temp dir), CMD_TIMEOUT=60.
set -u
export LC_ALL=C

RT=${1:?usage: $0 /path/to/runtime-binary}
case $RT in /*) ;; *) RT=$PWD/$RT ;; esac
[ -x "$RT" ] || { echo "FAIL runtime $RT is not executable"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "FAIL must run as root"; exit 2; }
TOP=$(cd "$(dirname "$0")/.." && pwd)
DOC=$TOP/docs/kubernetes.md
TMO=${CMD_TIMEOUT:-60}
for c in containerd ctr umoci jq; do
    command -v $c >/dev/null || { echo "FAIL $c not installed (apt-get install containerd umoci jq)"; exit 2; }
done
/usr/bin/python3 -c 'import grpc' 2>/dev/null || { echo "FAIL python3-grpcio not installed"; exit 2; }

. "$TOP/runtime-tests/engines-lib.sh"
W=$(mktemp -d /tmp/rcontain-cri.XXXXXX)
CG=rcontain-cri-$$
CTD_PID=
C=(ctr --address "$W/containerd.sock" -n k8s.io)

cleanup() {
    set +e
    if [ -n "$CTD_PID" ] && kill -0 "$CTD_PID" 2>/dev/null; then
        for t in $(timeout 10 "${C[@]}" tasks ls -q 2>/dev/null); do
            timeout 10 "${C[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1
            sleep 0.2
            timeout 10 "${C[@]}" tasks delete -f "$t" >/dev/null 2>&1
        done
        kill -TERM "$CTD_PID"
        for _ in $(seq 100); do kill -0 "$CTD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CTD_PID" 2>/dev/null
        wait "$CTD_PID" 2>/dev/null
    fi
    # Shims and containers of this run carry $W in their argv.
    remove_leftovers
    st=$(find "$W/runtime-root" -mindepth 2 -maxdepth 2 2>/dev/null | wc -l)
    [ "$st" -gt 0 ] && fail "$st runtime state entr(y/ies) left in $W/runtime-root"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- images: the busybox test image, and a pause image made from it ---------
busybox_image
NAME=$(cat "$IMG/IMAGE_NAME")
# The sandbox ("pause") container must keep running: same layer, Cmd sleep.
cp -a "$IMG/oci" "$W/oci"
umoci config --image "$W/oci:latest" --tag pause --config.cmd sleep --config.cmd 2147483 >"$W/umoci.log" 2>&1 ||
    { fail "umoci config (pause image): $(tail -2 "$W/umoci.log")"; exit 1; }
PAUSE=localhost/rcontain-pause:latest
# umoci copied the busybox entry's io.containerd.image.name: rename, keep only it.
jq -c --arg n "$PAUSE" '.manifests |= map(select(.annotations["org.opencontainers.image.ref.name"] == "pause")
    | .annotations["io.containerd.image.name"] = $n)' "$W/oci/index.json" >"$W/index.json" &&
    mv "$W/index.json" "$W/oci/index.json"
tar -C "$W/oci" -cf "$W/pause.tar" .

# ---- containerd config: private paths + the handler block from the doc -------
block=$(awk '/<!-- containerd-handler:begin/{on=1; next} /<!-- containerd-handler:end/{on=0} on' "$DOC" | sed '/^```/d')
[ -n "$block" ] || { fail "no containerd-handler block in $DOC"; exit 1; }
HANDLER=$(printf '%s\n' "$block" | sed -n 's/^\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.\([A-Za-z0-9_-]*\)\]$/\1/p' | head -1)
[ -n "$HANDLER" ] || { fail "cannot find the handler name in the block of $DOC"; exit 1; }

mkdir -p "$W/bin" "$W/logs" "$W/cni/bin" "$W/cni/conf"
: >"$W/rt-calls.log"
RTW=$W/bin/$(basename "$RT")
printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>%s\nexec %s "$@"\n' "$W/rt-calls.log" "$RT" >"$RTW"
chmod +x "$RTW"
handler_block=$(printf '%s\n' "$block" | awk -v bin="$RTW" -v root="$W/runtime-root" '
    /^[[:space:]]*BinaryName[[:space:]]*=/ { ind = $0; sub(/[^[:space:]].*/, "", ind)
        print ind "BinaryName = \"" bin "\""; print ind "Root = \"" root "\""; next } { print }')
printf '%s\n' "$handler_block" | grep -q "BinaryName = \"$RTW\"" || { fail "BinaryName line not found in the block of $DOC"; exit 1; }

# CAP_SYS_RESOURCE is capability 24.
RESTRICT_OOM=false
(( (0x$(awk '/^CapBnd/ {print $2}' /proc/self/status) >> 24) & 1 )) || RESTRICT_OOM=true
cat >"$W/config.toml" <<EOF
version = 2
root = "$W/root"
state = "$W/state"
[grpc]
  address = "$W/containerd.sock"
[ttrpc]
  address = "$W/containerd.sock.ttrpc"
[debug]
  address = "$W/debug.sock"
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # The pause container asks for oom_score_adj -998, which needs
  # CAP_SYS_RESOURCE; sandboxed CI machines may lack it even as root.
  restrict_oom_score_adj = $RESTRICT_OOM
# What "containerd config default" has, and the CRI plugin requires: a
# handler for default_runtime_name ("runc").
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "$W/cni/bin"
  conf_dir = "$W/cni/conf"

# ---- from docs/kubernetes.md ----
$handler_block
EOF

containerd --config "$W/config.toml" >"$W/containerd.log" 2>&1 &
CTD_PID=$!
for _ in $(seq 100); do "${C[@]}" version >/dev/null 2>&1 && break; kill -0 $CTD_PID 2>/dev/null || break; sleep 0.1; done
if "${C[@]}" version >/dev/null 2>&1; then pass "containerd started with the handler block of docs/kubernetes.md (handler '$HANDLER')"
else fail "containerd did not start: $(tail -3 "$W/containerd.log")"; exit 1; fi
cri=$("${C[@]}" plugins ls 2>/dev/null | awk '$2 == "cri" {print $NF}')
[ "$cri" = ok ] && pass "CRI plugin loaded the config" || fail "CRI plugin status '$cri': $(grep -i 'cri' "$W/containerd.log" | grep -i error | tail -2)"

timeout "$TMO" "${C[@]}" images import "$IMG/oci.tar" >"$W/import.log" 2>&1 &&
    timeout "$TMO" "${C[@]}" images import "$W/pause.tar" >>"$W/import.log" 2>&1 &&
    "${C[@]}" images ls -q | grep -qx "$PAUSE" &&
    pass "images imported into namespace k8s.io ($NAME, $PAUSE)" ||
    { fail "ctr images import: $(tail -3 "$W/import.log") $("${C[@]}" images ls -q | tr '\n' ' ')"; exit 1; }

timeout $((TMO * 3)) /usr/bin/python3 "$TOP/runtime-tests/cri_client.py" "$W/containerd.sock" "$HANDLER" "$NAME" "$W/logs" "/$CG" 2>&1
rc=$?
[ $rc = 0 ] || FAILS=$((FAILS + 1))

for sub in create start exec kill delete; do
    grep -Eq "(^| )$sub( |$)" "$W/rt-calls.log" && pass "the handler's binary ran '$sub'" || fail "the handler's binary never ran '$sub'"
done
grep -q -- "--root $W/runtime-root/k8s.io" "$W/rt-calls.log" && pass "the handler's Root option reached the runtime (--root)" ||
    fail "no --root $W/runtime-root/k8s.io in the runtime calls"

echo "---- runtime calls made through the CRI handler (argv, paths/ids normalised; count) ----"
sed -E -e 's#(^| )/[^ ]*#\1<path>#g' -e 's#=/[^ ]*#=<path>#g' -e 's/[0-9a-f]{64}/<id>/g' "$W/rt-calls.log" | sort | uniq -c | sort -rn
cleanup; trap - EXIT
finish
