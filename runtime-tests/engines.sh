#!/usr/bin/env bash
# runtime-tests/engines.sh [RUNTIME...]
#
# Runs real container engines on a runtime, end to end: containerd (ctr and
# the runc v2 shim), podman (conmon) and docker (dockerd -> containerd ->
# shim), with the project's shared client scripts
# (shared/clients/{containerd,podman,docker}.sh, beside the repository), plus
# the containerd runtime-handler check of docs/kubernetes.md
# (runtime-tests/cri-handler.sh) and the same-probe-everywhere check
# (runtime-tests/probe-engines.sh, against runc) and rootless podman as an
# ordinary user, compared with crun (runtime-tests/podman-rootless.sh).
# Default RUNTIME: target/release/rcontain. Give several (e.g. /usr/sbin/runc
# /usr/bin/crun target/release/rcontain) to compare them in one run.
#
# Prints every script's PASS/FAIL lines into a log dir and a summary; exits 1
# if any check failed for any runtime.
#
# Env: ENGINES="containerd podman docker cri probe podman-rootless"  which checks to run
#      CLIENTS=dir                            the shared client scripts
#      SCRIPT_TIMEOUT=600                     seconds per script
#      LOGDIR=dir                             keep the full outputs there
set -u
export LC_ALL=C

TOP=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "engines.sh: must run as root (engines start real containers)" >&2; exit 2; }

. "$TOP/runtime-tests/engines-lib.sh"
CLIENTS=$(find_clients)
if [ -z "$CLIENTS" ]; then
    echo "engines.sh: shared/clients/{containerd,podman,docker}.sh not found beside the repository ($TOP/../shared/clients); set CLIENTS=dir" >&2
    exit 2
fi

ENGINES=${ENGINES:-containerd podman docker cri probe podman-rootless}
TMO=${SCRIPT_TIMEOUT:-600}
[ $# -gt 0 ] || set -- "$TOP/target/release/rcontain"

# Debian packages the engines need, installed in one go on a fresh machine
# (the scripts would otherwise install them one by one).
pkgs=()
command -v containerd >/dev/null || pkgs+=(containerd)
command -v podman >/dev/null || pkgs+=(podman)
command -v conmon >/dev/null || pkgs+=(conmon)
[ -x /usr/lib/podman/netavark ] || command -v netavark >/dev/null || pkgs+=(netavark)
[ -x /usr/bin/docker ] || pkgs+=(docker.io)
command -v iptables-save >/dev/null || pkgs+=(iptables)
command -v jq >/dev/null || pkgs+=(jq)
command -v runc >/dev/null || pkgs+=(runc)
command -v crun >/dev/null || pkgs+=(crun)
command -v newuidmap >/dev/null || pkgs+=(uidmap)
command -v script >/dev/null || pkgs+=(util-linux)
command -v umoci >/dev/null || pkgs+=(umoci)
[ -x /bin/busybox ] || pkgs+=(busybox-static)
python3 -c 'import grpc, grpc_tools' 2>/dev/null || pkgs+=(python3-grpcio python3-grpc-tools)
if [ ${#pkgs[@]} -gt 0 ]; then
    echo "== installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${pkgs[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${pkgs[@]}" >/dev/null; } ||
        { echo "engines.sh: cannot install ${pkgs[*]}" >&2; exit 2; }
fi

LOGDIR=${LOGDIR:-$(mktemp -d /tmp/rcontain-engines.XXXXXX)}
mkdir -p "$LOGDIR"
IMG=$LOGDIR/image
"$CLIENTS/make-busybox-image.sh" "$IMG" >"$LOGDIR/make-image.log" 2>&1 ||
    { echo "engines.sh: make-busybox-image.sh failed: $(tail -2 "$LOGDIR/make-image.log")" >&2; exit 1; }

T0=$(date +%s)
failed=0
summary=()
for rt in "$@"; do
    case $rt in /*) ;; *) rt=$PWD/$rt ;; esac
    [ -x "$rt" ] || { echo "engines.sh: runtime $rt is not executable (cargo build --release?)" >&2; exit 2; }
    for e in $ENGINES; do
        args=("$rt")
        case $e in
        cri) script=$TOP/runtime-tests/cri-handler.sh ;;
        probe) script=$TOP/runtime-tests/probe-engines.sh; args+=("$(command -v runc)") ;;
        podman-rootless) script=$TOP/runtime-tests/podman-rootless.sh ;;
        *) script=$CLIENTS/$e.sh ;;
        esac
        log=$LOGDIR/$e-$(basename "$rt").log
        t=$(date +%s)
        echo "== $e with $rt"
        # timeout signals its whole process group (the script, its engines and
        # a hung client), so the script's cleanup trap gets to run.
        BUSYBOX_IMAGE_DIR=$IMG CMD_TIMEOUT=60 timeout -k 10 "$TMO" "$script" "${args[@]}" >"$log" 2>&1 </dev/null
        rc=$?
        grep -E '^(PASS|FAIL|SKIP)' "$log"
        npass=$(grep -c '^PASS' "$log")
        nfail=$(grep -c '^FAIL' "$log")
        if [ $rc != 0 ] || [ "$nfail" -gt 0 ]; then
            failed=1
            [ $rc = 124 ] && { echo "FAIL $e timed out after ${TMO}s"; nfail=$((nfail + 1)); }
            res=FAIL
        else
            res=PASS
        fi
        summary+=("$(printf '%-5s %-10s %-40s %3d passed, %2d failed, %4ss' "$res" "$e" "$rt" "$npass" "$nfail" $(($(date +%s) - t)))")
    done
done
echo "==== summary (logs in $LOGDIR) ===="
printf '%s\n' "${summary[@]}"
echo "==== total $(($(date +%s) - T0))s"
exit $failed
