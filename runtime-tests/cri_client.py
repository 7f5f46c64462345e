#!/usr/bin/python3
"""A minimal Kubernetes CRI (runtime.v1) client: what the kubelet does to run
one pod through a named runtime handler, without a kubelet or crictl (neither
is packaged for Debian 12).

Messages are encoded by hand in the protobuf wire format (only the fields the
steps below use; field numbers from k8s.io/cri-api runtime/v1 api.proto) and
sent with grpc's generic unary calls, so the only dependency is the Debian
package python3-grpcio.

    cri_client.py SOCKET HANDLER IMAGE LOGDIR CGROUP_PARENT

Prints one PASS/FAIL line per step; exits 1 if any failed.
"""

import sys
import time

import grpc


# ---- protobuf wire format --------------------------------------------------
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """Encode one field: int -> varint, str/bytes -> length-delimited,
    list -> repeated, None -> omitted. Nested messages are bytes."""
    if value is None:
        return b""
    if isinstance(value, list):
        return b"".join(field(num, v) for v in value)
    if isinstance(value, bool) or isinstance(value, int):
        return varint(num << 3) + varint(int(value))
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def msg(*fields):
    return b"".join(field(n, v) for n, v in fields)


def decode(data):
    """Decode one message level into {field: [values]} (varints as int,
    length-delimited as bytes)."""
    out, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(data, i)
        elif wt == 2:
            n, i = _read_varint(data, i)
            v, i = data[i:i + n], i + n
        elif wt == 1:
            v, i = data[i:i + 8], i + 8
        elif wt == 5:
            v, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.setdefault(num, []).append(v)
    return out


def _read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def first(d, num, default=None):
    return d.get(num, [default])[0]


# ---- CRI -------------------------------------------------------------------
# The pause image cri-handler.sh builds runs `sleep 2147483`.
PAUSE_MARK = b"2147483"
NODE = 2           # NamespaceMode NODE: the host network, so no CNI is needed
CONTAINER_EXITED = 2

fails = 0


def check(name, ok, detail=""):
    global fails
    if ok:
        print(f"PASS {name}")
    else:
        fails += 1
        print(f"FAIL {name}{': ' + detail if detail else ''}")
    sys.stdout.flush()
    return ok


def main():
    sock, handler, image, logdir, cgparent = sys.argv[1:6]
    ch = grpc.insecure_channel(f"unix://{sock}")

    def call(service, method, body, timeout=60):
        f = ch.unary_unary(f"/runtime.v1.{service}/{method}",
                           request_serializer=lambda b: b,
                           response_deserializer=lambda b: b)
        return decode(f(body, timeout=timeout))

    rt = lambda m, b, **kw: call("RuntimeService", m, b, **kw)

    v = rt("Version", msg((1, "v1")))
    check("CRI Version (runtime.v1)", first(v, 2) is not None,
          repr(v))

    # The image must be known to the CRI plugin (imported into k8s.io).
    spec = msg((1, image))
    for _ in range(50):
        st = call("ImageService", "ImageStatus", msg((1, spec)))
        if first(st, 1):
            break
        time.sleep(0.1)
    check(f"CRI ImageStatus {image}", bool(first(st, 1)))

    ns_opts = msg((1, NODE))
    sandbox_cfg = msg(
        (1, msg((1, "rcontain-probe"), (2, "uid-1"), (3, "default"), (4, 0))),
        # no hostname: with the host network the pod shares the host UTS namespace
        (3, logdir),
        (8, msg((1, cgparent), (2, msg((1, ns_opts))))),
    )

    # An unknown handler must be refused: the lookup is real.
    try:
        rt("RunPodSandbox", msg((1, sandbox_cfg), (2, "no-such-handler")))
        check("RunPodSandbox with an unknown handler is refused", False,
              "it succeeded")
    except grpc.RpcError as e:
        check("RunPodSandbox with an unknown handler is refused",
              "no-such-handler" in (e.details() or ""), e.details())

    try:
        r = rt("RunPodSandbox", msg((1, sandbox_cfg), (2, handler)))
    except grpc.RpcError as e:
        check(f"RunPodSandbox (runtime handler {handler!r})", False,
              e.details())
        return
    pod = first(r, 1).decode()
    check(f"RunPodSandbox (runtime handler {handler!r})", bool(pod))

    try:
        ctr_cfg = msg(
            (1, msg((1, "probe"))),
            (2, spec),
            (3, ["sh", "-c"]),
            (4, ["echo hello-from-cri; exec sleep 1000"]),
            (11, "probe.log"),
        )
        r = rt("CreateContainer",
               msg((1, pod), (2, ctr_cfg), (3, sandbox_cfg)))
        cid = first(r, 1).decode()
        check("CreateContainer", bool(cid))
        rt("StartContainer", msg((1, cid)))
        check("StartContainer", True)

        x = rt("ExecSync", msg((1, cid), (2, ["sh", "-c",
                                               "echo exec-ok; exit 3"]),
                               (3, 20)))
        check("ExecSync (output, exit 3)",
              first(x, 1, b"").strip() == b"exec-ok" and first(x, 3, 0) == 3,
              repr(x))
        x = rt("ExecSync", msg((1, cid), (2, ["cat", "/proc/1/cmdline"]),
                               (3, 20)))
        check("ExecSync shares the pod's pid namespace (pid 1 is the pause)",
              PAUSE_MARK in first(x, 1, b""), repr(x))

        log = ""
        for _ in range(50):
            try:
                log = open(f"{logdir}/probe.log").read()
            except OSError:
                pass
            if "hello-from-cri" in log:
                break
            time.sleep(0.1)
        check("container output reaches the CRI log", "hello-from-cri" in log,
              log[:200])

        rt("StopContainer", msg((1, cid), (2, 2)))
        st = rt("ContainerStatus", msg((1, cid)))
        status = decode(first(st, 1, b""))
        check("StopContainer -> CONTAINER_EXITED",
              first(status, 3) == CONTAINER_EXITED, repr(status.get(3)))
        rt("RemoveContainer", msg((1, cid)))
        check("RemoveContainer", True)
    except grpc.RpcError as e:
        check("container steps", False, e.details())
    finally:
        try:
            rt("StopPodSandbox", msg((1, pod)))
            rt("RemovePodSandbox", msg((1, pod)))
            check("StopPodSandbox + RemovePodSandbox", True)
        except grpc.RpcError as e:
            check("StopPodSandbox + RemovePodSandbox", False, e.details())


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        check("CRI call", False, f"{e.code()}: {e.details()}")
    sys.exit(1 if fails else 0)
