#!/usr/bin/env python3
"""Builds rcontain's example images, byte for byte reproducibly.

Usage: images.py OUTDIR BUSYBOX

Every tar entry is written explicitly (sorted names, fixed owners, modes and
mtimes, no user/group names, deterministic PAX headers), gzip without a name
or timestamp, zstd at a fixed level, so the digests are the same on every
build. Only Python's standard library, the `zstd` program and the given
static busybox binary are used.

OUTDIR/hello/   one-layer busybox image that prints a greeting
OUTDIR/layers/  three layers (gzip, zstd, plain) covering every layer rule:
                whiteouts, opaque dirs (also across layers), a hardlink to a
                lower-layer file, symlinks, char/block devices, a fifo, user.*
                and security.capability xattrs, setuid/setgid/sticky bits,
                owners, mtimes, a file replaced by a directory and back.
Each holds oci/ (layout), oci.tar (OCI archive) and docker-archive.tar.
layers/oci also has tag "multi": a nested index with amd64 and arm64
manifests, for platform selection, and tag "gzip": the same layers all gzip.
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

EPOCH = 1700000000  # every entry's mtime unless a case sets another
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# security.capability v2 for cap_net_raw+ep: magic|effective, permitted
# low word with bit 13, inheritable and high words zero.
CAP_NET_RAW = bytes([0x01, 0, 0, 0x02, 0, 0x20, 0, 0] + [0] * 12)

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


class Layer:
    """A tar built entry by entry; names are sorted on output."""

    def __init__(self):
        self.entries = {}

    def _add(self, name, kind, mode, uid=0, gid=0, mtime=EPOCH, data=b"",
             link="", dev=(0, 0), xattrs=None):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = mtime
        ti.linkname = link
        ti.devmajor, ti.devminor = dev
        ti.size = len(data) if kind == tarfile.REGTYPE else 0
        if xattrs:
            ti.pax_headers = {
                "SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                for k, v in sorted(xattrs.items())
            }
        self.entries[name] = (ti, data)
        return self

    def dir(self, name, mode=0o755, **kw):
        return self._add(name.rstrip("/") + "/", tarfile.DIRTYPE, mode, **kw)

    def file(self, name, data, mode=0o644, **kw):
        if isinstance(data, str):
            data = data.encode()
        return self._add(name, tarfile.REGTYPE, mode, data=data, **kw)

    def symlink(self, name, target, **kw):
        return self._add(name, tarfile.SYMTYPE, 0o777, link=target, **kw)

    def hardlink(self, name, target, **kw):
        return self._add(name, tarfile.LNKTYPE, 0o644, link=target, **kw)

    def chardev(self, name, major, minor, mode=0o666, **kw):
        return self._add(name, tarfile.CHRTYPE, mode, dev=(major, minor), **kw)

    def blockdev(self, name, major, minor, mode=0o660, **kw):
        return self._add(name, tarfile.BLKTYPE, mode, dev=(major, minor), **kw)

    def fifo(self, name, mode=0o644, **kw):
        return self._add(name, tarfile.FIFOTYPE, mode, **kw)

    def whiteout(self, name):
        d, base = os.path.split(name)
        return self.file(os.path.join(d, ".wh." + base), b"", mode=0o600)

    def opaque(self, dirname):
        return self.file(os.path.join(dirname, ".wh..wh..opq"), b"", mode=0o600)

    def tar(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name in sorted(self.entries):
                ti, data = self.entries[name]
                t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
        return buf.getvalue()


def busybox_base(busybox):
    """The busybox rootfs: the binary, one symlink per applet, /etc files."""
    l = Layer()
    for d in ["bin", "dev", "etc", "home", "proc", "root", "run", "sbin", "sys",
              "usr", "usr/bin", "usr/sbin", "var", "var/run"]:
        l.dir("./" + d)
    l.dir("./root", mode=0o700)
    l.dir("./tmp", mode=0o1777)
    with open(busybox, "rb") as f:
        l.file("./bin/busybox", f.read(), mode=0o755)
    applets = subprocess.run([busybox, "--list-full"], check=True,
                             capture_output=True, text=True).stdout.split()
    for p in sorted(set(applets)):
        if p != "bin/busybox":
            l.symlink("./" + p, "/bin/busybox")
    l.file("./etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
           "app:x:1000:1000:app:/home/app:/bin/sh\n"
           "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    l.file("./etc/group", "root:x:0:\napp:x:1000:\nwheel:x:10:app\n"
           "nogroup:x:65534:\n")
    l.file("./etc/hostname", "busybox\n")
    l.file("./etc/hosts", "")
    l.file("./etc/resolv.conf", "")
    l.dir("./home/app", uid=1000, gid=1000)
    return l


def fixture_layers(base):
    """Three layers on top of which every case of the layer rules shows."""
    l1 = base
    l1.dir("./data")
    l1.file("./data/file-a", "version 1\n")
    l1.file("./data/gone", "whited out by layer 2\n")
    l1.dir("./data/gonedir").file("./data/gonedir/inner", "whole dir whited out\n")
    l1.dir("./data/opq").file("./data/opq/old1", "hidden\n").file("./data/opq/old2", "hidden\n")
    l1.dir("./data/opq/olddir").file("./data/opq/olddir/deep", "hidden\n")
    l1.dir("./data/multi").file("./data/multi/a", "from layer 1\n")
    l1.file("./data/target", "hardlinked from layer 2\n", mode=0o640, uid=1000, gid=10)
    l1.file("./data/swap", "a file in layer 1, a dir in layer 2, a file again in 3\n")
    l1.dir("./data/swapdir").file("./data/swapdir/x", "dir in layer 1, file in 2\n")
    l1.symlink("./data/link-rel", "file-a")
    l1.symlink("./data/link-abs", "/etc/passwd")
    l1.symlink("./data/link-dangling", "../nowhere/at/all")
    l1.symlink("./data/link-dir", "opq")
    l1.file("./data/suid", "#!/bin/sh\n", mode=0o4755)
    l1.file("./data/sgid", "#!/bin/sh\n", mode=0o2755, gid=10)
    l1.file("./data/ugs", "all three\n", mode=0o7755)
    l1.dir("./data/sticky", mode=0o1777)
    l1.dir("./data/sgid-dir", mode=0o2775, gid=10)
    l1.file("./data/owned", "owned by app\n", uid=1000, gid=1000, mode=0o600)
    l1.file("./data/owned-big", "large ids\n", uid=100000, gid=200000)
    l1.file("./data/old", "old mtime\n", mtime=1234567890)
    l1.dir("./data/olddir", mtime=1000000000)
    l1.dir("./data/dev")
    l1.chardev("./data/dev/null", 1, 3)
    l1.chardev("./data/dev/tty9", 4, 9, mode=0o620, gid=5)
    l1.blockdev("./data/dev/loop7", 7, 7)
    l1.fifo("./data/dev/fifo", mode=0o600)
    l1.file("./data/xattr-user", "has user xattrs\n",
            xattrs={"user.greeting": b"hello", "user.empty-ish": b"-"})
    l1.file("./data/cap-ping", "pretend ping\n", mode=0o755,
            xattrs={"security.capability": CAP_NET_RAW})
    l1.dir("./data/xattr-dir", xattrs={"user.dir": b"on a directory"})

    l2 = Layer()
    l2.dir("./data")
    l2.whiteout("./data/gone")
    l2.whiteout("./data/gonedir")
    l2.dir("./data/opq").opaque("./data/opq").file("./data/opq/new1", "visible\n")
    l2.dir("./data/multi").file("./data/multi/b", "from layer 2\n")
    l2.hardlink("./data/hl-lower", "data/target")
    l2.file("./data/file-a", "version 2\n", mode=0o600)
    l2.dir("./data/swap", mode=0o750).file("./data/swap/inside", "swap is a dir now\n")
    l2.file("./data/swapdir", "swapdir is a file now\n")
    l2.file("./data/new-in-2", "new\n")
    l2.hardlink("./data/new-in-2-hl", "data/new-in-2")  # same layer
    l2.symlink("./data/link-rel", "new-in-2")  # symlink retargeted

    l3 = Layer()
    l3.dir("./data")
    l3.file("./data/swap", "and a file again\n", mode=0o640)
    l3.dir("./data/multi").opaque("./data/multi").file("./data/multi/c", "only c is left\n")
    l3.dir("./data/gonedir", mode=0o700).file("./data/gonedir/reborn", "recreated\n")
    l3.whiteout("./data/link-dir")
    l3.file("./data/link-abs", "a symlink replaced by a file\n")
    return [l1, l2, l3]


class Layout:
    def __init__(self, path):
        self.path = path
        self.blobs = os.path.join(path, "blobs", "sha256")
        os.makedirs(self.blobs)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        self.manifests = []

    def put(self, data, media_type):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, d), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + d, "size": len(data)}

    def write_index(self):
        idx = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": self.manifests}
        with open(os.path.join(self.path, "index.json"), "wb") as f:
            f.write(canon(idx))


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def compress(data, how):
    if how == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-3", "--no-progress", "-c"], input=data,
                              check=True, capture_output=True).stdout
    return data


def image_config(tars, cfg, arch="amd64"):
    return canon({
        "created": "2023-11-14T22:13:20Z", "author": "rcontain bundles/images.py",
        "architecture": arch, "os": "linux", "config": cfg,
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "images.py"}
                    for _ in tars],
    })


def add_manifest(lay, tars, comps, cfg, arch="amd64"):
    config = lay.put(image_config(tars, cfg, arch), MT_CONFIG)
    layers = [lay.put(compress(t, c), MT_LAYER[c]) for t, c in zip(tars, comps)]
    m = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config, "layers": layers}
    desc = lay.put(canon(m), MT_MANIFEST)
    desc["platform"] = {"architecture": arch, "os": "linux"}
    return desc


def tar_dir(src, dest):
    """A reproducible tar of a directory tree (for OCI archives)."""
    l = Layer()
    for root, dirs, files in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(root, src)
        if rel != ".":
            l.dir(rel)
        for n in sorted(files):
            with open(os.path.join(root, n), "rb") as f:
                l.file(os.path.normpath(os.path.join(rel, n)), f.read())
    with open(dest, "wb") as f:
        f.write(l.tar())


def docker_archive(dest, tars, cfg, name):
    l = Layer()
    config = image_config(tars, cfg)
    cname = hashlib.sha256(config).hexdigest() + ".json"
    l.file(cname, config)
    paths = []
    for t in tars:
        d = hashlib.sha256(t).hexdigest()
        l.dir(d)
        l.file(d + "/layer.tar", t)
        paths.append(d + "/layer.tar")
    l.file("manifest.json", canon([{"Config": cname, "RepoTags": [name], "Layers": paths}]))
    l.file("repositories", canon({name.rsplit(":", 1)[0]: {"latest": paths[-1].split("/")[0]}}))
    with open(dest, "wb") as f:
        f.write(l.tar())


def build(out, name, tars, comps, cfg, extra=None):
    d = os.path.join(out, name)
    lay = Layout(os.path.join(d, "oci"))
    desc = add_manifest(lay, tars, comps, cfg)
    desc["annotations"] = {"org.opencontainers.image.ref.name": "latest",
                           "io.containerd.image.name": "localhost/%s:latest" % name}
    lay.manifests.append(desc)
    if extra:
        extra(lay)
    lay.write_index()
    tar_dir(lay.path, os.path.join(d, "oci.tar"))
    docker_archive(os.path.join(d, "docker-archive.tar"), tars, cfg,
                   "localhost/%s:latest" % name)


def main():
    out, busybox = sys.argv[1], sys.argv[2]
    hello = busybox_base(busybox).tar()
    build(out, "hello", [hello], ["gzip"], {
        "Env": [PATH_ENV], "Cmd": ["echo", "hello from rcontain"], "WorkingDir": "/",
        "Labels": {"org.opencontainers.image.title": "hello"},
    })

    tars = [l.tar() for l in fixture_layers(busybox_base(busybox))]
    cfg = {"Env": [PATH_ENV, "IMAGE=layers"], "Entrypoint": ["/bin/sh", "-c"],
           "Cmd": ["ls -la /data"], "WorkingDir": "/data", "User": "root:root",
           "ExposedPorts": {"8080/tcp": {}}, "Volumes": {"/data/vol": {}},
           "StopSignal": "SIGTERM", "Labels": {"org.opencontainers.image.title": "layers"}}

    def multi(lay):
        amd = add_manifest(lay, tars, ["gzip", "gzip", "gzip"], cfg, "amd64")
        arm = add_manifest(lay, tars, ["gzip", "gzip", "gzip"], cfg, "arm64")
        inner = lay.put(canon({"schemaVersion": 2, "mediaType": MT_INDEX,
                               "manifests": [amd, arm]}), MT_INDEX)
        inner["annotations"] = {"org.opencontainers.image.ref.name": "multi"}
        lay.manifests.append(inner)
        # umoci 0.4 reads no zstd: the same layers, all gzip, for comparing.
        lay.manifests.append(dict(amd, annotations={"org.opencontainers.image.ref.name": "gzip"}))

    build(out, "layers", tars, ["gzip", "zstd", "none"], cfg, multi)


if __name__ == "__main__":
    main()
