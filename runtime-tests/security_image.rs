//! Attacks through images, run for real:
//! (a) an unprivileged host user reaching a setuid-root binary or a 0666
//!     device node of an image through the store's layer directories or a
//!     container's rootfs overlay (CVE-2021-41091 class), while inside the
//!     container both still work;
//! (b) sparse and decompression bombs: sparse tar entries (old GNU and the
//!     PAX 0.0, 0.1 and 1.0 formats) keep their holes, and a layer or image
//!     expanding beyond the size limits fails with nothing left;
//! (c) a directory-form docker archive whose manifest names layer paths
//!     outside the archive (absolute, `..`, a symlink out) or a FIFO.

mod common;
#[allow(dead_code)] // shared with image.rs, which uses the rest
#[path = "image/util.rs"]
mod util;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use util::{sha256_hex, write_layout_cmd, RawTar, TestLayer};

const MIB: u64 = 1 << 20;

/// An unprivileged host user: made for the test (removed at the end) or
/// reused if a previous run left it.
struct HostUser {
    name: String,
    uid: u32,
    gid: u32,
    created: bool,
}

impl HostUser {
    fn get() -> HostUser {
        let name = "rctimgprobe".to_string();
        let id = |flag: &str| -> Option<u32> {
            let o = Command::new("id").args([flag, &name]).output().ok()?;
            String::from_utf8_lossy(&o.stdout).trim().parse().ok()
        };
        let mut created = false;
        if id("-u").is_none() {
            let st = Command::new("useradd")
                .args(["--system", "--no-create-home", "--shell", "/bin/false"])
                .arg(&name)
                .status()
                .expect("running useradd");
            assert!(st.success(), "useradd {name} failed");
            created = true;
        }
        HostUser {
            uid: id("-u").expect("uid of the probe user"),
            gid: id("-g").expect("gid of the probe user"),
            name,
            created,
        }
    }

    /// Runs `prog args` as this user (no supplementary groups). Err when
    /// the user cannot execute it at all.
    fn run(&self, prog: &Path, args: &[&str]) -> std::io::Result<Output> {
        Command::new(prog)
            .args(args)
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null())
            .output()
    }
}

impl Drop for HostUser {
    fn drop(&mut self) {
        if self.created {
            let _ = Command::new("userdel").arg(&self.name).status();
        }
    }
}

/// A static binary printing its effective uid (busybox drops a setuid
/// root's privileges itself, so it cannot be the probe). None when the
/// host cannot build one.
fn euid_probe(dir: &Path) -> Option<Vec<u8>> {
    let src = dir.join("probe.c");
    fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\n\
         int main(void){printf(\"euid=%d\\n\",(int)geteuid());return 0;}\n",
    )
    .unwrap();
    let bin = dir.join("probe");
    let ok = Command::new("cc")
        .args(["-static", "-O", "-o"])
        .arg(&bin)
        .arg(&src)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| fs::read(&bin).unwrap())
}

/// Deletes a container of the store at `store` even if the test fails
/// (TestEnv's own cleanup does not know the store).
struct StoreContainer<'a> {
    env: &'a TestEnv,
    store: PathBuf,
    id: String,
}

impl Drop for StoreContainer<'_> {
    fn drop(&mut self) {
        let s = self.store.to_str().unwrap();
        let _ = self.env.rt(&["--store", s, "delete", "-f", &self.id]);
    }
}

fn mountinfo_lines_under(dir: &Path) -> Vec<String> {
    let p = dir.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|mp| mp.starts_with(p)))
        .map(str::to_string)
        .collect()
}

fn dev_of_root() -> Option<(u64, u64)> {
    let d = fs::metadata("/").ok()?.dev();
    let (maj, min) = (nix::sys::stat::major(d), nix::sys::stat::minor(d));
    (maj != 0).then_some((maj, min))
}

fn readable_by(user: &HostUser, node: &Path) -> bool {
    let dd = Path::new("/bin/dd");
    let o = user.run(
        dd,
        &[
            &format!("if={}", node.display()),
            "of=/dev/null",
            "bs=512",
            "count=1",
        ],
    );
    o.expect("running dd").status.success()
}

fn nosuid_fs(p: &Path) -> bool {
    nix::sys::statvfs::statvfs(p).is_ok_and(|s| {
        s.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID)
            || s.flags().contains(nix::sys::statvfs::FsFlags::ST_NODEV)
    })
}

#[test]
fn image_setuid_files_and_devices_are_unreachable_from_the_host() {
    let env = TestEnv::new("imgsuid");
    let Some(probe) = euid_probe(&env.dir) else {
        eprintln!("skipped: host lacks a C compiler with a static libc (for the euid probe)");
        return;
    };
    if nosuid_fs(&env.dir) {
        eprintln!("skipped: host mounts the temp dir nosuid/nodev (no positive control)");
        return;
    }
    let disk = dev_of_root();
    let user = HostUser::get();

    // Positive control: the very same setuid binary and device node where
    // the user can reach them do give euid 0 and the host's disk.
    let ctl = env.dir.join("ctl");
    fs::create_dir(&ctl).unwrap();
    fs::set_permissions(&ctl, fs::Permissions::from_mode(0o755)).unwrap();
    let ctl_probe = ctl.join("probe");
    fs::write(&ctl_probe, &probe).unwrap();
    fs::set_permissions(&ctl_probe, fs::Permissions::from_mode(0o4755)).unwrap();
    let o = user
        .run(&ctl_probe, &[])
        .expect("running the control probe");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "euid=0\n",
        "positive control: a reachable setuid-root probe must give euid 0"
    );
    // Device nodes: the 1:3 (null) node must open; the host disk's only
    // where this host lets any node of it open (a VM may forbid that even
    // to root), so it is part of the attack only when its control works.
    let node_opens = |name: &str, kind: nix::sys::stat::SFlag, (maj, min): (u64, u64)| {
        let node = ctl.join(name);
        nix::sys::stat::mknod(
            &node,
            kind,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(maj, min),
        )
        .unwrap();
        fs::set_permissions(&node, fs::Permissions::from_mode(0o666)).unwrap();
        let readable = readable_by(&user, &node);
        fs::remove_file(&node).unwrap();
        readable
    };
    assert!(
        node_opens("nul", nix::sys::stat::SFlag::S_IFCHR, (1, 3)),
        "positive control: a 0666 1:3 node"
    );
    let disk = disk.filter(|&d| node_opens("disk", nix::sys::stat::SFlag::S_IFBLK, d));
    if disk.is_none() {
        eprintln!("note: host disk nodes do not open here; probing with 1:3 only");
    }
    fs::remove_file(&ctl_probe).unwrap();

    let busybox = fs::read("/bin/busybox").unwrap();
    let mut layer = RawTar::default()
        .dir("bin/")
        .entry("bin/busybox", b'0', "", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .symlink("bin/sleep", "busybox")
        .entry("bin/probe", b'0', "", 0o4755, &probe)
        .entry_dev("nul", b'3', "", 0o666, b"", (1, 3));
    if let Some(d) = disk {
        layer = layer.entry_dev("disk", b'4', "", 0o666, b"", d);
    }
    let img = env.dir.join("img");
    write_layout_cmd(
        &img,
        vec![TestLayer::plain(layer.finish())],
        &["sleep", "1000"],
    );
    let store = env.dir.join("store");
    let s = store.to_str().unwrap();
    let id = env.id("suid");
    let _guard = StoreContainer {
        env: &env,
        store: store.clone(),
        id: id.clone(),
    };
    env.rt(&[
        "--store",
        s,
        "run",
        "-d",
        "--image",
        img.to_str().unwrap(),
        &id,
    ])
    .expect_ok("run -d --image");

    // Every place the image's content is on the host: the layer
    // directories, and the container's rootfs overlay (and whatever else
    // mountinfo shows under the store).
    let mut roots: Vec<PathBuf> = fs::read_dir(store.join("layers/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mounts = mountinfo_lines_under(&store);
    assert!(!mounts.is_empty(), "no rootfs mount under the store");
    for m in &mounts {
        let mp = PathBuf::from(m.split(' ').nth(4).unwrap());
        roots.push(mp);
    }
    assert!(roots.len() >= 2, "{roots:?}");
    for r in &roots {
        assert!(
            r.join("bin/probe").exists(),
            "{} holds no probe",
            r.display()
        );
        let out = match user.run(&r.join("bin/probe"), &[]) {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            !out.contains("euid=0"),
            "host user {} got euid 0 from {}/bin/probe",
            user.name,
            r.display()
        );
        for dev in ["nul", "disk"] {
            let node = r.join(dev);
            if node.exists() {
                assert!(
                    !readable_by(&user, &node),
                    "host user {} opened the image's device node {}",
                    user.name,
                    node.display()
                );
            }
        }
    }

    for m in &mounts {
        let opts = m.split(' ').nth(5).unwrap();
        assert!(
            opts.contains("nosuid") && opts.contains("nodev"),
            "the host sees image content mounted without nosuid,nodev: {m}"
        );
    }

    // Inside the container the image's setuid binary and device nodes
    // still work: a uid-1000 process without no_new_privs gets euid 0,
    // and /nul (1:3, allowed by the default device rules) opens.
    let proc_json = env.dir.join("process.json");
    fs::write(
        &proc_json,
        serde_json::to_vec(&json!({
            "user": {"uid": 1000, "gid": 1000},
            "args": ["/bin/probe"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": false,
        }))
        .unwrap(),
    )
    .unwrap();
    let o = env.rt(&[
        "--store",
        s,
        "exec",
        "--process",
        proc_json.to_str().unwrap(),
        &id,
    ]);
    o.expect_ok("exec the setuid probe as uid 1000");
    assert_eq!(o.stdout, "euid=0\n", "setuid inside the container");
    let o = env.rt(&[
        "--store",
        s,
        "exec",
        &id,
        "sh",
        "-c",
        "echo x > /nul && echo dev-ok",
    ]);
    o.expect_ok("exec writing to the image's 1:3 node");
    assert_eq!(o.stdout, "dev-ok\n", "device node inside the container");
    drop(_guard);
    assert!(
        mountinfo_lines_under(&store).is_empty(),
        "mount left after delete"
    );
}

/// The store and `unpack` output are closed to other users at their top.
#[test]
fn store_and_unpack_output_are_private() {
    let env = TestEnv::new("imgperm");
    let img = env.dir.join("img");
    write_layout_cmd(
        &img,
        vec![TestLayer::plain(RawTar::default().file("f", "x").finish())],
        &["sh"],
    );
    let store = env.dir.join("store");
    let o = env.rt(&["--store", store.to_str().unwrap(), "images"]);
    o.expect_ok("images");
    let mode = fs::metadata(&store).unwrap().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "store {} is {mode:o}", store.display());
    let bundle = env.dir.join("bundle");
    util::unpack_ok(&["--quiet", img.to_str().unwrap(), bundle.to_str().unwrap()]);
    let mode = fs::metadata(&bundle).unwrap().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "bundle is {mode:o}");
}

// ---- sparse files and size limits ------------------------------------------

fn have_gnu_tar() -> bool {
    Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU tar"))
}

/// A sparse file `name` in `dir` of `size` bytes with "hello" at `size/2`.
fn sparse_file(dir: &Path, name: &str, size: u64) {
    let f = fs::File::create(dir.join(name)).unwrap();
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"hello", size / 2).unwrap();
}

/// A layer tar of `names` (files in `dir`) made by GNU tar with `--sparse`
/// in `format`: "gnu", or a PAX sparse version "0.0", "0.1", "1.0".
fn sparse_tar(dir: &Path, format: &str, names: &[&str]) -> Vec<u8> {
    let mut c = Command::new("tar");
    c.arg("-C")
        .arg(dir)
        .args(["--sparse", "--numeric-owner", "-cf", "-"]);
    if format == "gnu" {
        c.arg("--format=gnu");
    } else {
        c.args(["--format=pax", &format!("--sparse-version={format}")]);
    }
    let o = c.args(names).output().unwrap();
    assert!(
        o.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn check_sparse(path: &Path, size: u64) {
    let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(md.is_file(), "{} is not a file", path.display());
    assert_eq!(md.len(), size, "size of {}", path.display());
    assert!(
        md.blocks() * 512 <= MIB,
        "{} has {} bytes allocated: its holes were written",
        path.display(),
        md.blocks() * 512
    );
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(path).unwrap();
    let mut b = [0u8; 5];
    f.read_exact_at(&mut b, size / 2).unwrap();
    assert_eq!(&b, b"hello", "data of {}", path.display());
    f.read_exact_at(&mut b, 4096).unwrap();
    assert_eq!(b, [0; 5], "hole of {}", path.display());
}

const FORMATS: [(&str, &str); 4] = [
    ("gnu", "sp-gnu"),
    ("0.0", "sp-00"),
    ("0.1", "sp-01"),
    ("1.0", "sp-10"),
];

#[test]
fn sparse_entries_keep_their_holes() {
    let env = TestEnv::new("imgsparse");
    if !have_gnu_tar() {
        eprintln!("skipped: host lacks GNU tar (to write sparse entries)");
        return;
    }
    let src = env.dir.join("src");
    fs::create_dir(&src).unwrap();
    let mut layers = Vec::new();
    for (format, name) in FORMATS {
        sparse_file(&src, name, 64 * MIB);
        let tar = sparse_tar(&src, format, &[name]);
        assert!(tar.len() < 64 * 1024, "{format}: {} bytes", tar.len());
        layers.push(TestLayer::plain(tar));
    }
    let img = env.dir.join("img");
    write_layout_cmd(&img, layers, &["sh"]);

    let bundle = env.dir.join("bundle");
    util::unpack_ok(&["--quiet", img.to_str().unwrap(), bundle.to_str().unwrap()]);
    for (_, name) in FORMATS {
        check_sparse(&bundle.join("rootfs").join(name), 64 * MIB);
    }
    assert_eq!(
        util::names(&bundle.join("rootfs")),
        ["sp-00", "sp-01", "sp-10", "sp-gnu"],
        "PAX sparse members land under their real names"
    );

    // The store applies layers with the same code: its layer directories
    // keep the holes too.
    let store = env.dir.join("store");
    let o = env.rt(&[
        "--store",
        store.to_str().unwrap(),
        "run",
        "--image",
        img.to_str().unwrap(),
        &env.id("sparse"),
    ]);
    // No shell in the image: the run fails, after the import.
    assert!(!o.ok());
    let mut checked = 0;
    for e in fs::read_dir(store.join("layers/sha256")).unwrap() {
        let dir = e.unwrap().path();
        for (_, name) in FORMATS {
            if dir.join(name).exists() {
                check_sparse(&dir.join(name), 64 * MIB);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4, "every format in the store's layers");
}

/// No bundle, no staging directory beside it.
fn assert_no_bundle(parent: &Path) {
    let left = util::names(parent);
    assert!(left.is_empty(), "left in {}: {left:?}", parent.display());
}

#[test]
fn layers_over_the_size_limits_fail_cleanly() {
    let env = TestEnv::new("imglimit");
    if !have_gnu_tar() {
        eprintln!("skipped: host lacks GNU tar (to write sparse entries)");
        return;
    }
    let src = env.dir.join("src");
    fs::create_dir(&src).unwrap();
    sparse_file(&src, "a", 64 * MIB);
    sparse_file(&src, "b", 64 * MIB);
    let two_in_one = env.dir.join("two-in-one");
    write_layout_cmd(
        &two_in_one,
        vec![TestLayer::plain(sparse_tar(&src, "gnu", &["a", "b"]))],
        &["sh"],
    );
    let one_each = env.dir.join("one-each");
    write_layout_cmd(
        &one_each,
        vec![
            TestLayer::plain(sparse_tar(&src, "1.0", &["a"])),
            TestLayer::plain(sparse_tar(&src, "0.1", &["b"])),
        ],
        &["sh"],
    );
    let out = env.dir.join("out");
    fs::create_dir(&out).unwrap();
    let bundle = out.join("bundle");
    let b = bundle.to_str().unwrap();

    // Control: within the limits, both unpack.
    for img in [&two_in_one, &one_each] {
        util::unpack_ok(&[
            "--quiet",
            "--max-layer-size",
            "200M",
            img.to_str().unwrap(),
            b,
        ]);
        fs::remove_dir_all(&bundle).unwrap();
    }
    for (flag, img) in [
        ("--max-layer-size", &two_in_one),
        ("--max-image-size", &one_each),
    ] {
        let o = util::unpack(&["--quiet", flag, "100M", img.to_str().unwrap(), b]);
        let err = util::stderr(&o);
        assert!(!o.status.success(), "{flag} 100M: unpacked anyway");
        assert!(
            err.contains(flag),
            "{flag}: error does not name the limit: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert_no_bundle(&out);
    }

    // The same through the store: nothing stored, no bundle, no mount.
    let store = env.dir.join("store");
    let s = store.to_str().unwrap();
    for (flag, img) in [
        ("--max-layer-size", &two_in_one),
        ("--max-image-size", &one_each),
    ] {
        let id = env.id("limit");
        let o = env.rt(&[
            "--store",
            s,
            "run",
            flag,
            "100M",
            "--image",
            img.to_str().unwrap(),
            &id,
        ]);
        assert!(!o.ok(), "run {flag} 100M: ran anyway");
        assert!(o.stderr.contains(flag), "{flag}: {}", o.stderr);
        assert!(
            util::names(&store.join("layers/sha256")).is_empty(),
            "{flag}: layers left in the store"
        );
        assert!(util::names(&store.join("containers")).is_empty());
        assert!(util::names(&store.join("images")).is_empty());
        env.assert_nothing_left();
    }

    // A compressed archive is decompressed into a temporary file: no
    // further than the image may expand.
    let zeros = env.dir.join("zeros");
    write_layout_cmd(
        &zeros,
        vec![TestLayer::plain(
            RawTar::default()
                .entry("z", b'0', "", 0o644, &vec![0; 4 << 20])
                .finish(),
        )],
        &["sh"],
    );
    let archive = env.dir.join("zeros.tar.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | gzip > {}",
            zeros.display(),
            archive.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let o = util::unpack(&[
        "--quiet",
        "--max-image-size",
        "2M",
        archive.to_str().unwrap(),
        b,
    ]);
    let err = util::stderr(&o);
    assert!(!o.status.success(), "archive bomb unpacked");
    assert!(
        err.contains("decompresses to more than 2 MiB (--max-image-size)"),
        "{err}"
    );
    assert_no_bundle(&out);
    util::unpack_ok(&[
        "--quiet",
        "--max-image-size",
        "8M",
        archive.to_str().unwrap(),
        b,
    ]);
    fs::remove_dir_all(&bundle).unwrap();

    // The default limit: a 1.5 KiB layer claiming 40 GiB. (File size
    // rlimit so that a runtime writing the zeros cannot fill the disk.)
    sparse_file(&src, "huge", 40 << 30);
    let huge = env.dir.join("huge");
    let tar = sparse_tar(&src, "gnu", &["huge"]);
    fs::remove_file(src.join("huge")).unwrap();
    assert!(tar.len() < 16 * 1024, "{}", tar.len());
    write_layout_cmd(&huge, vec![TestLayer::plain(tar)], &["sh"]);
    let mut c = Command::new(util::rcontain_bin());
    c.args(["unpack", "--quiet", huge.to_str().unwrap(), b]);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        c.pre_exec(|| {
            let l = libc::rlimit {
                rlim_cur: 256 << 20,
                rlim_max: 256 << 20,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &l);
            // A write past the limit fails with EFBIG instead of killing.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let o = util::run(&mut c);
    let err = util::stderr(&o);
    assert!(!o.status.success(), "40 GiB layer unpacked");
    assert!(err.contains("--max-layer-size"), "{err}");
    assert_no_bundle(&out);
}

// ---- directory-form docker archives -----------------------------------------

/// A directory docker archive at `dir` whose one layer is `member`, with
/// diff_id `layer_tar`'s.
fn docker_dir(dir: &Path, member: &str, layer_tar: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(layer_tar))]},
    }))
    .unwrap();
    let hex = sha256_hex(&config);
    fs::write(dir.join(format!("{hex}.json")), &config).unwrap();
    let manifest = json!([{
        "Config": format!("{hex}.json"),
        "RepoTags": ["probe:1"],
        "Layers": [member],
    }]);
    fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

#[test]
fn docker_archive_directory_layers_stay_inside() {
    let env = TestEnv::new("imgdarc");
    let tar = RawTar::default().file("escaped", "from outside\n").finish();
    let outside = env.dir.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("layer.tar"), &tar).unwrap();
    let out = env.dir.join("out");
    fs::create_dir(&out).unwrap();
    let bundle = out.join("bundle");
    // `timeout`: opening a FIFO would wait for a writer forever.
    let unpack = |img: &Path| {
        util::run(
            Command::new("timeout")
                .args([
                    "60",
                    util::rcontain_bin().to_str().unwrap(),
                    "unpack",
                    "--quiet",
                ])
                .arg(img)
                .arg(&bundle),
        )
    };

    // Control: the same layer inside the archive directory unpacks.
    let ok = env.dir.join("control");
    docker_dir(&ok, "layer.tar", &tar);
    fs::write(ok.join("layer.tar"), &tar).unwrap();
    let o = unpack(&ok);
    assert!(o.status.success(), "control: {}", util::stderr(&o));
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/escaped")).unwrap(),
        "from outside\n"
    );
    fs::remove_dir_all(&bundle).unwrap();

    let abs = outside.join("layer.tar");
    let cases: [(&str, String); 4] = [
        ("absolute", abs.to_str().unwrap().to_string()),
        ("dotdot", "../outside/layer.tar".into()),
        ("symlink", "link.tar".into()),
        ("fifo", "fifo.tar".into()),
    ];
    for (what, member) in cases {
        let dir = env.dir.join(what);
        docker_dir(&dir, &member, &tar);
        match what {
            "symlink" => symlink(&abs, dir.join("link.tar")).unwrap(),
            "fifo" => nix::unistd::mkfifo(
                &dir.join("fifo.tar"),
                nix::sys::stat::Mode::from_bits_truncate(0o644),
            )
            .unwrap(),
            _ => {}
        }
        let o = unpack(&dir);
        let err = util::stderr(&o);
        assert!(
            !o.status.success(),
            "{what}: a layer outside the archive directory was unpacked"
        );
        assert!(
            err.contains("layer") && !err.is_empty(),
            "{what}: unclear error: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
        assert_no_bundle(&out);
    }
}
