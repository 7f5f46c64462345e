//! Device nodes and the standard /dev symlinks inside the rootfs.

use crate::kernel::Kernel;
use crate::rootfs::safepath;
use anyhow::{anyhow, bail, Result};
use nix::sys::stat::{makedev, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

/// The devices every container gets (runtime-spec "Default Devices").
pub const DEFAULT: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

const LINKS: [(&str, &str); 5] = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
];

/// A device to create: path, type, major, minor, mode, uid, gid.
struct Node<'a> {
    path: &'a str,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// How the container's device nodes come to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Nodes {
    /// mknod, then chmod and chown to what the config says
    Made,
    /// the host's node at the same path bind-mounted: in a user namespace
    /// mknod is not allowed, and this is what every runtime does there
    FromHost,
}

/// Where the node or link at `path` goes: below /dev, when the runtime
/// mounted a filesystem there (`dev`: that mount), through that mount's fd,
/// for /dev looked up again could lead elsewhere by now (a rootfs shared
/// as another container's volume); anywhere else inside the rootfs.
fn base<'a>(
    root: BorrowedFd<'a>,
    dev: Option<BorrowedFd<'a>>,
    path: &'a str,
) -> (BorrowedFd<'a>, &'a str) {
    use std::path::Component;
    if let (Some(dev), Ok(rest)) = (dev, Path::new(path).strip_prefix("/dev")) {
        // `..` would leave /dev: resolved from the rootfs as before.
        if rest.components().all(|c| matches!(c, Component::Normal(_))) {
            if let Some(rest) = rest.to_str().filter(|r| !r.is_empty()) {
                return (dev, rest);
            }
        }
    }
    (root, path)
}

/// The paths of the nodes `create_all` makes: the default devices not
/// replaced by one of `linux.devices`, then those. With `Nodes::FromHost`
/// each is the host's node at the same path.
pub fn paths(devices: &[LinuxDevice]) -> impl Iterator<Item = &Path> {
    DEFAULT
        .iter()
        .map(|(p, _, _)| Path::new(*p))
        .filter(|p| !devices.iter().any(|d| d.path() == p))
        .chain(devices.iter().map(|d| d.path().as_path()))
}

/// Create the default devices plus `linux.devices` (a device of the config
/// at a default's path replaces it); `dev`: the mount the config put at
/// /dev, if any.
pub fn create_all(
    k: &dyn Kernel,
    root: BorrowedFd,
    dev: Option<BorrowedFd>,
    devices: &[LinuxDevice],
    how: Nodes,
) -> Result<()> {
    for (path, major, minor) in DEFAULT {
        if devices.iter().any(|d| d.path().as_os_str() == path) {
            continue;
        }
        create(
            k,
            root,
            dev,
            &Node {
                path,
                kind: SFlag::S_IFCHR,
                major,
                minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
            },
            how,
        )
        .map_err(|e| anyhow!("default device {path}: {e:#}"))?;
    }
    for (i, d) in devices.iter().enumerate() {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(anyhow!(
                    "linux.devices[{i}].type: \"a\" is only valid in cgroup device rules"
                ))
            }
        };
        let path = d.path().to_string_lossy();
        let node = Node {
            path: &path,
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        create(k, root, dev, &node, how)
            .map_err(|e| anyhow!("linux.devices[{i}] ({path}): {e:#}"))?;
    }
    Ok(())
}

/// The host's node at `n`'s path, opened (following symlinks, as a bind
/// mount would) and checked to be the device `n` asks for: the path comes
/// from the config, which could otherwise have any file of the user's
/// bound into the container in place of a device.
fn host_node(n: &Node) -> Result<std::os::fd::OwnedFd> {
    use nix::fcntl::OFlag;
    let fd = crate::sys::open(n.path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| anyhow!("the host's {}: {}", n.path, e.desc()))?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd())
        .map_err(|e| anyhow!("the host's {}: {}", n.path, e.desc()))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let name = |k: SFlag| match k {
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFIFO => "a fifo",
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFSOCK => "a socket",
        _ => "not a device",
    };
    if kind != n.kind {
        bail!(
            "the host's {} is {}, not {} as the config says",
            n.path,
            name(kind),
            name(n.kind)
        );
    }
    let (major, minor) = (
        nix::sys::stat::major(st.st_rdev),
        nix::sys::stat::minor(st.st_rdev),
    );
    if n.kind != SFlag::S_IFIFO && (major, minor) != (n.major, n.minor) {
        bail!(
            "the host's {} is device {major}:{minor}, not {}:{} as the config says",
            n.path,
            n.major,
            n.minor
        );
    }
    Ok(fd)
}

fn create(
    k: &dyn Kernel,
    root: BorrowedFd,
    dev: Option<BorrowedFd>,
    n: &Node,
    how: Nodes,
) -> Result<()> {
    let (root, path) = base(root, dev, n.path);
    let (dir, name) = safepath::split_parent(path.trim_start_matches('/'));
    let opened;
    let parent = if dir.is_empty() {
        // directly in the /dev mount's root
        root
    } else {
        opened = safepath::mkdir_all_in_root(root, dir, 0o755)
            .map_err(|e| anyhow!("creating its directory: {}", e.desc()))?;
        opened.as_fd()
    };
    if how == Nodes::FromHost {
        let host = host_node(n)?;
        let target = safepath::create_file_in_root(root, path)
            .map_err(|e| anyhow!("creating the mount point: {}", e.desc()))?;
        // Bound from the fd that was checked, not from the path again.
        return k
            .bind_mount(&safepath::fd_path(&host), target.as_fd())
            .map_err(|e| anyhow!("bind mounting the host's node: {}", e.desc()));
    }
    let dev = if n.kind == SFlag::S_IFIFO {
        0
    } else {
        makedev(n.major, n.minor)
    };
    let mode = Mode::from_bits_truncate(n.mode & 0o7777);
    let mknod = || k.mknodat(parent, name, n.kind, mode, dev);
    mknod()
        .or_else(|e| {
            if e != nix::errno::Errno::EEXIST {
                return Err(e);
            }
            // A file already there (from the image) is replaced: the spec
            // says the runtime supplies these nodes.
            let _ = nix::unistd::unlinkat(
                Some(parent.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            mknod()
        })
        .map_err(|e| anyhow!("mknod: {}", e.desc()))?;
    // mknod is subject to the umask: set the exact mode and owner on the
    // node itself, through the directory fd (never a re-walked path).
    crate::sys::chmod_nofollow(parent, name, n.mode & 0o7777)
        .or_else(|e| {
            if e == nix::errno::Errno::EOPNOTSUPP {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| anyhow!("chmod: {}", e.desc()))?;
    k.chown_at(parent, name, n.uid, n.gid)
        .map_err(|e| anyhow!("chown: {}", e.desc()))?;
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err} and /dev/ptmx (to the container's devpts),
/// plus /dev/core when the kernel has /proc/kcore; in `dev` (see
/// `create_all`) when the config mounted a filesystem at /dev.
pub fn create_links(root: BorrowedFd, dev: Option<BorrowedFd>) -> Result<()> {
    let devdir = match dev {
        Some(d) => d.try_clone_to_owned(),
        None => safepath::mkdir_all_in_root(root, "/dev", 0o755).map_err(std::io::Error::from),
    }
    .map_err(|e| anyhow!("/dev: {e}"))?;
    let kcore = std::path::Path::new("/proc/kcore")
        .exists()
        .then_some(("/proc/kcore", "/dev/core"));
    for (target, link) in LINKS.iter().copied().chain(kcore) {
        let name = &link["/dev/".len()..];
        if link == "/dev/ptmx" {
            let _ = nix::unistd::unlinkat(
                Some(devdir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(target, Some(devdir.as_raw_fd()), name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(anyhow!("symlink {link} -> {target}: {}", e.desc())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Call, Recorder};
    use std::os::fd::OwnedFd;
    use std::path::PathBuf;

    fn root(dir: &Path) -> OwnedFd {
        std::fs::File::open(dir).unwrap().into()
    }

    fn devices(json: serde_json::Value) -> Vec<LinuxDevice> {
        serde_json::from_value(json).unwrap()
    }

    fn made(calls: &[Call]) -> Vec<(PathBuf, SFlag, u32, u64)> {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Mknod {
                    path,
                    kind,
                    mode,
                    dev,
                } => Some((path.clone(), *kind, *mode, *dev)),
                _ => None,
            })
            .collect()
    }

    /// With root: every default node and the config's are made (a config
    /// device at a default's path replaces it), with the config's mode and
    /// owner, below directories the rootfs did not have.
    #[test]
    fn nodes_made_with_root() {
        let dir = tempfile::tempdir().unwrap();
        let k = Recorder::default();
        let devs = devices(serde_json::json!([
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 7, "gid": 8},
            {"path": "/dev/sub/fuse", "type": "c", "major": 10, "minor": 229},
            {"path": "/dev/pipe", "type": "p"}
        ]));
        create_all(&k, root(dir.path()).as_fd(), None, &devs, Nodes::Made).unwrap();
        let calls = k.calls();
        let d = dir.path().join("dev");
        let mut want: Vec<_> = ["zero", "full", "random", "urandom", "tty"]
            .iter()
            .zip([(1, 5), (1, 7), (1, 8), (1, 9), (5, 0)])
            .map(|(n, (ma, mi))| (d.join(n), SFlag::S_IFCHR, 0o666, makedev(ma, mi)))
            .collect();
        want.push((d.join("null"), SFlag::S_IFCHR, 0o600, makedev(1, 3)));
        want.push((d.join("sub/fuse"), SFlag::S_IFCHR, 0o666, makedev(10, 229)));
        want.push((d.join("pipe"), SFlag::S_IFIFO, 0o666, 0));
        assert_eq!(made(&calls), want);
        assert!(calls.contains(&Call::Chown {
            path: d.join("null"),
            uid: 7,
            gid: 8
        }));
        assert!(!calls.iter().any(|c| matches!(c, Call::Bind { .. })));
    }

    /// A file the image has where a node goes is replaced by the node.
    #[test]
    fn a_file_in_the_way_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::fs::write(dir.path().join("dev/zero"), "from the image").unwrap();
        let k = Recorder::default();
        create_all(&k, root(dir.path()).as_fd(), None, &[], Nodes::Made).unwrap();
        let zero = dir.path().join("dev/zero");
        assert!(made(&k.calls()).iter().any(|(p, ..)| *p == zero));
        assert_eq!(std::fs::read(&zero).unwrap(), b"");
    }

    /// In a user namespace: no mknod, the host's node is bound onto a
    /// mount point at the same path, from the fd its type and numbers were
    /// checked on; nothing is given away.
    #[test]
    fn host_nodes_bound_in_a_user_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let k = Recorder::default();
        let devs = devices(serde_json::json!([
            {"path": "/dev/full", "type": "c", "major": 1, "minor": 7}
        ]));
        create_all(&k, root(dir.path()).as_fd(), None, &devs, Nodes::FromHost).unwrap();
        let d = dir.path().join("dev");
        let calls = k.calls();
        let targets: Vec<&Path> = calls
            .iter()
            .map(|c| match c {
                Call::Bind { source, target } => {
                    assert!(source.starts_with("/proc/self/fd/"), "{source}");
                    target.as_path()
                }
                c => panic!("{c:?}"),
            })
            .collect();
        let want: Vec<PathBuf> = ["null", "zero", "random", "urandom", "tty", "full"]
            .iter()
            .map(|n| d.join(n))
            .collect();
        assert_eq!(targets, want);
        assert!(d.join("full").is_file(), "the mount point is made");
    }

    /// A host file that is not the device asked for is refused, naming
    /// the field: a regular file (or a symlink to one), another device.
    #[test]
    fn host_nodes_must_be_the_devices_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let (file, link) = (file.to_str().unwrap(), link.to_str().unwrap());
        for (dev, why) in [
            (
                serde_json::json!({"path": file, "type": "c", "major": 1, "minor": 3}),
                "a regular file",
            ),
            (
                serde_json::json!({"path": link, "type": "b", "major": 1, "minor": 3}),
                "a regular file",
            ),
            (
                serde_json::json!({"path": "/dev/full", "type": "c", "major": 1, "minor": 3}),
                "device 1:7",
            ),
            (
                serde_json::json!({"path": "/dev/full", "type": "b", "major": 1, "minor": 7}),
                "a character device",
            ),
        ] {
            let rootfs = tempfile::tempdir().unwrap();
            let k = Recorder::default();
            let e = create_all(
                &k,
                root(rootfs.path()).as_fd(),
                None,
                &devices(serde_json::json!([dev])),
                Nodes::FromHost,
            )
            .unwrap_err();
            let e = format!("{e:#}");
            assert!(
                e.starts_with("linux.devices[0] (") && e.contains(why),
                "{e}"
            );
            let at = rootfs
                .path()
                .join(dev["path"].as_str().unwrap().trim_start_matches('/'));
            assert!(
                !k.calls()
                    .iter()
                    .any(|c| matches!(c, Call::Bind { target, .. } if *target == at)),
                "bound: {:?}",
                k.calls()
            );
        }
    }

    /// The /dev links; /dev/ptmx replaces whatever the image put there.
    #[test]
    fn links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("dev");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("ptmx"), "").unwrap();
        create_links(root(dir.path()).as_fd(), None).unwrap();
        for (target, link) in LINKS {
            let at = dir.path().join(&link[1..]);
            assert_eq!(
                std::fs::read_link(&at).unwrap(),
                Path::new(target),
                "{link}"
            );
        }
    }

    #[test]
    fn a_rule_only_type_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let devs = devices(serde_json::json!([{"path": "/dev/x", "type": "a"}]));
        let e = create_all(
            &Recorder::default(),
            root(dir.path()).as_fd(),
            None,
            &devs,
            Nodes::Made,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("linux.devices[0].type"), "{e:#}");
    }

    #[test]
    fn nodes_below_dev_go_through_the_dev_mount() {
        let dir = tempfile::tempdir().unwrap();
        let (r, d) = (root(dir.path()), root(dir.path()));
        let (r, d) = (r.as_fd(), d.as_fd());
        let at = |p| {
            let (fd, rest) = base(r, Some(d), p);
            (fd.as_raw_fd() == d.as_raw_fd(), rest)
        };
        assert_eq!(at("/dev/null"), (true, "null"));
        assert_eq!(at("//dev/net/tun"), (true, "net/tun"));
        assert_eq!(at("/dev/../etc/x"), (false, "/dev/../etc/x"));
        assert_eq!(at("/devices/x"), (false, "/devices/x"));
        assert_eq!(at("/dev"), (false, "/dev"));
        assert_eq!(base(r, None, "/dev/null").1, "/dev/null");
    }
}
