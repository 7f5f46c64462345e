#!/usr/bin/env bash
# runtime-tests/probe-engines.sh [RCONTAIN [REFERENCE]]
#
# "Same behaviour whoever calls it": one probe (busybox image, `sh -c PROBE`
# printing hostname, uid/gids, cwd, env, capabilities, no_new_privs,
# seccomp mode, rlimits and mounts) is run
#   - directly:        RUNTIME run, on a bundle from the image rootfs;
#   - via containerd:  ctr run --runc-binary RUNTIME;
#   - via podman:      podman --runtime RUNTIME run;
#   - via docker:      dockerd with RUNTIME registered, docker run --runtime;
# each time once with rcontain and once with the reference runtime (runc).
#
# Checks (FAIL exits 1):
#   1. per caller, rcontain's observations are identical to runc's: given the
#      same config.json from the same engine, the container looks the same;
#   2. across callers, every difference is one the engine put in its
#      config.json: for each section the script shows which callers differ
#      and what in their configs explains it (the config.json each engine
#      gave the runtime is captured by a wrapper).
#
# Debian packages: containerd, podman, conmon, docker.io, jq, busybox-static.
# Env: BUSYBOX_IMAGE_DIR, CLIENTS (shared/clients dir), KEEP=1,
#      CALLERS="direct containerd podman docker".
set -u
export LC_ALL=C

TOP=$(cd "$(dirname "$0")/.." && pwd)
RC=${1:-$TOP/target/release/rcontain}
REF=${2:-$(command -v runc)}
for r in RC REF; do
    v=${!r}; case $v in /*) ;; *) v=$PWD/$v ;; esac
    [ -x "$v" ] || { echo "FAIL runtime $v is not executable"; exit 2; }
    printf -v "$r" %s "$v"
done
[ "$(id -u)" = 0 ] || { echo "FAIL must run as root"; exit 2; }
CALLERS=${CALLERS:-direct containerd podman docker}

. "$TOP/runtime-tests/engines-lib.sh"
W=$(mktemp -d /tmp/rcontain-probe.XXXXXX)
CG=rcontain-probe-$$
HAD_RUNDOCKER=0; [ -e /run/docker ] && HAD_RUNDOCKER=1
HAD_RUNCTRS=0; [ -e /run/containers ] && HAD_RUNCTRS=1
HAD_VARLIB=0; [ -e /var/lib/containers ] && HAD_VARLIB=1
CTD_PID= DPID=

cleanup() {
    set +e
    [ -n "$DPID" ] && { timeout 30 docker -H "unix://$W/docker.sock" rm -f $(docker -H "unix://$W/docker.sock" ps -aq 2>/dev/null) >/dev/null 2>&1; stop_pid "$DPID"; }
    stop_pid "$CTD_PID"
    [ -f "$W/containers.conf" ] && CONTAINERS_CONF=$W/containers.conf CONTAINERS_STORAGE_CONF=$W/storage.conf timeout 30 "${P[@]}" rm -a -f -t 0 >/dev/null 2>&1
    remove_leftovers
    [ $HAD_RUNDOCKER = 0 ] && rm -rf /run/docker
    [ $HAD_RUNCTRS = 0 ] && rm -rf /run/containers
    [ $HAD_VARLIB = 0 ] && rm -rf /var/lib/containers
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the probe: one "section key value" line per observation ----------------
# /proc/$$ is the probing shell itself (a child's caps could differ after
# its own execve).
PROBE='
echo "hostname $(hostname)"
echo "ids uid=$(id -u) gid=$(id -g) groups=$(id -G | tr " " ,)"
echo "cwd $(pwd)"
env | grep -v -e "^SHLVL=" -e "^_=" | sort | sed "s/^/env /"
grep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):" /proc/$$/status | tr -d "\t" | sed "s/^/proc /"
sed -n "2,\$p" /proc/$$/limits | sed -E "s/  +/|/g; s/^/limit /"
awk "{ for (i = 7; \$i != \"-\"; i++) ; print \"mount\", \$5, \$(i+1), \$6 }" /proc/$$/mountinfo | sort
'

# ---- runtime wrappers: capture the config.json each engine hands over --------
mkdir -p "$W/bin" "$W/obs" "$W/cfg"
wrap() { # NAME REAL -> $W/bin/<name>/<basename>, same basename (podman keys on it)
    local d=$W/bin/$1
    mkdir -p "$d"
    cat >"$d/$(basename "$2")" <<EOF
#!/bin/sh
prev=
for a; do
    [ "\$prev" = --bundle ] && [ -f "\$a/config.json" ] && cp "\$a/config.json" "$W/cfg/\$CALLER-$1.json" 2>/dev/null
    prev=\$a
done
exec $2 "\$@"
EOF
    chmod +x "$d/$(basename "$2")"
    echo "$d/$(basename "$2")"
}

busybox_image
NAME=$(cat "$IMG/IMAGE_NAME")

# ---- callers -------------------------------------------------------------------
# Each: caller_<name> RT_NAME RT_PATH OUTFILE ; runs the probe, output -> OUTFILE
caller_direct() {
    local b=$W/bundle-$1
    mkdir -p "$b"
    # The bundle's config is the reference runtime's own default (`spec`), made
    # read-only-rootfs so both runtimes can share the image rootfs, with the
    # probe as its process.
    (cd "$b" && rm -f config.json && "$REF" spec) || return 1
    jq --arg p "$PROBE" --arg r "$IMG/rootfs" '.process.args = ["sh", "-c", $p] | .process.terminal = false |
        .hostname = "probe" | .root.path = $r | .root.readonly = true' "$b/config.json" >"$b/c" && mv "$b/c" "$b/config.json"
    cp "$b/config.json" "$W/cfg/direct-$1.json"
    timeout 60 "$2" --root "$W/state-$1" run --bundle "$b" "probe-$1-$$" >"$3" 2>"$3.err" </dev/null
}

caller_containerd() {
    [ -n "$CTD_PID" ] || start_containerd || return 1
    mkdir -p "$W/fifo"
    timeout 60 ctr --address "$W/ctd.sock" run --rm --runc-binary "$2" --runc-root "$W/ctd-rt-$1" \
        --fifo-dir "$W/fifo" --cgroup "/$CG/ctd-$1" "$NAME" "probe-$1" sh -c "$PROBE" >"$3" 2>"$3.err" </dev/null
}

P=(podman --root "$W/pm-storage" --runroot "$W/pm-run" --tmpdir "$W/pm-libpod" --storage-driver overlay
   --volumepath "$W/pm-volumes" --network-config-dir "$W/pm-net" --cgroup-manager cgroupfs --events-backend file)
caller_podman() {
    local nofile nproc
    if [ ! -f "$W/containers.conf" ]; then
        nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ] && nofile=1048576
        nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
        # As shared/clients/podman.sh: limits the host allows, cgroupfs, no
        # /etc configs, JSON logs for our runtime names.
        cat >"$W/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "rcontain"]
EOF
        printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$W/pm-storage" "$W/pm-run" >"$W/storage.conf"
        mkdir -p "$W/tmp"
        CONTAINERS_CONF=$W/containers.conf CONTAINERS_STORAGE_CONF=$W/storage.conf TMPDIR=$W/tmp \
            timeout 60 "${P[@]}" import --change 'CMD ["sh"]' "$IMG/rootfs.tar" "$NAME" >/dev/null 2>&1 || return 1
    fi
    CONTAINERS_CONF=$W/containers.conf CONTAINERS_STORAGE_CONF=$W/storage.conf TMPDIR=$W/tmp \
        timeout 60 "${P[@]}" --runtime "$2" run --rm --network none --hostname probe --cgroup-parent "/$CG" \
        "$NAME" sh -c "$PROBE" >"$3" 2>"$3.err" </dev/null
}

dk_start() {
    jq -n --arg rc "$W/bin/rcontain/$(basename "$RC")" --arg ref "$W/bin/reference/$(basename "$REF")" --arg key "$W/dk-key.json" \
        '{"deprecated-key-path": $key, "runtimes": {"rcontain": {"path": $rc}, "reference": {"path": $ref}}}' >"$W/daemon.json"
    dockerd --config-file "$W/daemon.json" --data-root "$W/dk-data" --exec-root "$W/dk-exec" --pidfile "$W/dockerd.pid" \
        -H "unix://$W/docker.sock" --cgroup-parent "/$CG" --exec-opt native.cgroupdriver=cgroupfs --userland-proxy=false \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false >"$W/dockerd.log" 2>&1 &
    DPID=$!
    for _ in $(seq 300); do docker -H "unix://$W/docker.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
    docker -H "unix://$W/docker.sock" import --change 'CMD ["sh"]' "$IMG/rootfs.tar" "$NAME" >/dev/null 2>&1
}
caller_docker() {
    [ -n "$DPID" ] || dk_start || return 1
    DOCKER_CONFIG=$W/dk-client timeout 60 docker -H "unix://$W/docker.sock" run --rm --runtime "$1" --network none \
        --hostname probe "$NAME" sh -c "$PROBE" >"$3" 2>"$3.err" </dev/null
}

# ---- run -------------------------------------------------------------------------
RCW=$(wrap rcontain "$RC")
REFW=$(wrap reference "$REF")
for c in $CALLERS; do
    for r in reference rcontain; do
        if [ $r = rcontain ]; then bin=$RCW; else bin=$REFW; fi
        out=$W/obs/$c-$r
        if CALLER=$c "caller_$c" "$r" "$bin" "$out" && [ -s "$out" ] && grep -q '^hostname ' "$out"; then
            pass "probe via $c with $r ($(wc -l <"$out") observations)"
        else
            fail "probe via $c with $r: $(tail -3 "$out.err" 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
        fi
    done
done
export CALLER=

# ---- 1. same caller, same config: rcontain == reference ---------------------------
for c in $CALLERS; do
    a=$W/obs/$c-reference b=$W/obs/$c-rcontain
    [ -s "$a" ] && [ -s "$b" ] || continue
    if diff -q "$a" "$b" >/dev/null; then
        pass "via $c: $(basename "$RC")'s observations are identical to $(basename "$REF")'s"
    else
        fail "via $c: $(basename "$RC") differs from $(basename "$REF") (< $(basename "$REF"), > $(basename "$RC")):"
        diff "$a" "$b" | grep '^[<>]' | head -20 | sed 's/^/     /'
    fi
done

# ---- 2. across callers: differences, and the config.json that asked for them ------
# section -> config.json paths that decide it
declare -A CFG=(
    [hostname]='.hostname'
    [ids]='.process.user'
    [cwd]='.process.cwd'
    [env]='.process.env'
    [proc]='[.process.capabilities, .process.noNewPrivileges, (.linux.seccomp != null)]'
    [limit]='.process.rlimits'
    [mount]='[.root.readonly, ([.mounts[] | .destination] | sort)]'
)
base=$W/obs/direct-rcontain
echo "---- observations across callers ($(basename "$RC")), relative to a direct '$(basename "$RC") run' ----"
for c in $CALLERS; do
    [ "$c" = direct ] && continue
    o=$W/obs/$c-rcontain
    [ -s "$o" ] && [ -s "$base" ] || continue
    for s in hostname ids cwd env proc limit mount; do
        d=$(diff <(grep "^$s " "$base") <(grep "^$s " "$o") | grep '^[<>]')
        [ -z "$d" ] && { echo "  $c $s: same"; continue; }
        # The difference is explained when the engine's config.json differs
        # from the direct bundle's in the fields that decide this section.
        cd_=$(diff <(jq -S "${CFG[$s]}" "$W/cfg/direct-rcontain.json" 2>/dev/null) \
                   <(jq -S "${CFG[$s]}" "$W/cfg/$c-rcontain.json" 2>/dev/null) | grep -c '^[<>]')
        n=$(printf '%s\n' "$d" | wc -l)
        if [ "$cd_" -gt 0 ]; then
            echo "  $c $s: $n line(s) differ; explained: $c's config.json sets ${CFG[$s]} differently ($cd_ line(s) of JSON differ)"
        else
            fail "$c $s: observations differ from 'rcontain run' but the config fields ${CFG[$s]} are the same:"
            printf '%s\n' "$d" | head -8 | sed 's/^/     /'
        fi
        printf '%s\n' "$d" | head -6 | sed 's/^/       /'
    done
done

cleanup; trap - EXIT
finish
