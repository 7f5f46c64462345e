//! Device nodes and the standard /dev symlinks inside the rootfs.

use crate::rootfs::safepath::{self, fd_path};
use anyhow::{anyhow, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsRawFd, BorrowedFd};

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

/// Where the node or link at `path` goes: below /dev, when the runtime
/// mounted a filesystem there (`dev`: that mount), through that mount's fd,
/// for /dev looked up again could lead elsewhere by now (a rootfs shared
/// as another container's volume); anywhere else inside the rootfs.
fn base<'a>(
    root: BorrowedFd<'a>,
    dev: Option<BorrowedFd<'a>>,
    path: &'a str,
) -> (BorrowedFd<'a>, &'a str) {
    use std::path::{Component, Path};
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

/// Create the default devices plus `linux.devices`; `dev`: the mount the
/// config put at /dev, if any. In a user namespace mknod is not allowed:
/// the host's node is bind-mounted instead, which is what every runtime
/// does there.
pub fn create_all(
    root: BorrowedFd,
    dev: Option<BorrowedFd>,
    devices: &[LinuxDevice],
    bind: bool,
) -> Result<()> {
    for (path, major, minor) in DEFAULT {
        if devices.iter().any(|d| d.path().as_os_str() == path) {
            continue;
        }
        create(
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
            bind,
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
        create(root, dev, &node, bind)
            .map_err(|e| anyhow!("linux.devices[{i}] ({path}): {e:#}"))?;
    }
    Ok(())
}

fn create(root: BorrowedFd, dev: Option<BorrowedFd>, n: &Node, bind: bool) -> Result<()> {
    let (root, path) = base(root, dev, n.path);
    let (dir, name) = safepath::split_parent(path.trim_start_matches('/'));
    let parent = safepath::mkdir_all_in_root(root, dir, 0o755)
        .map_err(|e| anyhow!("creating its directory: {}", e.desc()))?;
    if bind {
        let target = safepath::create_file_in_root(root, path)
            .map_err(|e| anyhow!("creating the mount point: {}", e.desc()))?;
        return mount(
            Some(n.path),
            fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| anyhow!("bind mounting the host's node: {}", e.desc()));
    }
    // A file already there (from the image) is replaced: the spec says the
    // runtime supplies these nodes.
    let _ = nix::unistd::unlinkat(
        Some(parent.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    let dev = if n.kind == SFlag::S_IFIFO {
        0
    } else {
        makedev(n.major, n.minor)
    };
    mknodat(
        Some(parent.as_raw_fd()),
        name,
        n.kind,
        Mode::from_bits_truncate(n.mode & 0o7777),
        dev,
    )
    .map_err(|e| anyhow!("mknod: {}", e.desc()))?;
    // mknod is subject to the umask: set the exact mode and owner on the
    // node itself, through the directory fd (never a re-walked path).
    nix::sys::stat::fchmodat(
        Some(parent.as_raw_fd()),
        name,
        Mode::from_bits_truncate(n.mode & 0o7777),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|e| {
        if e == nix::errno::Errno::EOPNOTSUPP {
            Ok(())
        } else {
            Err(e)
        }
    })
    .map_err(|e| anyhow!("chmod: {}", e.desc()))?;
    nix::unistd::fchownat(
        Some(parent.as_raw_fd()),
        name,
        Some(n.uid.into()),
        Some(n.gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
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
    use std::os::fd::AsFd;

    #[test]
    fn nodes_below_dev_go_through_the_dev_mount() {
        let root = crate::sys::open("/", nix::fcntl::OFlag::O_PATH, Mode::empty()).unwrap();
        let dev = crate::sys::open("/tmp", nix::fcntl::OFlag::O_PATH, Mode::empty()).unwrap();
        let (r, d) = (root.as_fd(), dev.as_fd());
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
