# The host matrix's application (images.sh puts it in the python image):
# prints, as the probe's observer does, "key: value" lines of what it
# sees: its interpreter first, then what the image config asked for (user,
# working directory, environment) and a small workload on the standard
# library's C extensions, and exits with PROBE_EXIT.
import hashlib
import os
import platform
import sqlite3
import ssl
import sys
import zlib


def o(key, value):
    print(f"{key}: {value}")


o("probe", "started")
o("python.version", platform.python_version())
o("python.executable", sys.executable)
o("python.prefix", sys.prefix)
o("python.encoding", f"{sys.getfilesystemencoding()} {sys.stdout.encoding}")
o("libc", " ".join(platform.libc_ver()))
o("openssl", ssl.OPENSSL_VERSION)
o("sqlite", sqlite3.sqlite_version)
o("zlib", zlib.ZLIB_RUNTIME_VERSION)
o("id", f"uid={os.getuid()} gid={os.getgid()} groups={sorted(os.getgroups())}")
o("cwd", os.getcwd())
with open("/proc/self/cgroup") as f:
    o("cgroup", f.read().replace("\n", " "))
o("cgroup.version", 2 if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else 1)
for k in sorted(os.environ):
    o(f"env.{k}", os.environ[k])
db = sqlite3.connect(":memory:")
db.execute("create table t (n integer)")
db.executemany("insert into t values (?)", [(i,) for i in range(1000)])
o("work.sum", db.execute("select sum(n * n) from t").fetchone()[0])
o("work.sha256", hashlib.sha256(zlib.compress(b"rcontain" * 1000)).hexdigest())
try:
    open("/data/probe", "w").close()
    o("write./data", "ok")
except OSError as e:
    o("write./data", e.strerror)
code = int(os.environ.get("PROBE_EXIT", "0"))
o("probe", f"exit {code}")
sys.stdout.flush()
sys.exit(code)
