//! Path resolution that cannot escape a root directory.
//!
//! Every path that comes from a container image or config.json (mount
//! destinations, device nodes, masked paths, cwd) is resolved with
//! openat2(RESOLVE_IN_ROOT): symlinks and `..` are evaluated as if the
//! rootfs were `/`, so a symlink planted in the image can never redirect a
//! mount or a write onto the host (CVE-2021-30465 class). Operations are then
//! done on the resulting fd through /proc/self/fd, never on a re-walked path.

use crate::sys;
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

const RESOLVE_ROOTED: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

/// Open `path` (interpreted inside `root`) with `flags`.
pub fn open_in_root(root: BorrowedFd, path: &str, flags: i32) -> nix::Result<OwnedFd> {
    sys::openat2(root, rel(path), flags, 0, RESOLVE_ROOTED)
}

/// Like `mkdir -p`, but every component is resolved inside `root`; a
/// dangling symlink on the way is followed (inside root) and its target
/// created. Returns an O_PATH fd of the final directory.
pub fn mkdir_all_in_root(root: BorrowedFd, path: &str, mode: u32) -> nix::Result<OwnedFd> {
    mkdir_all_depth(root, rel(path), mode, 0)
}

fn mkdir_all_depth(root: BorrowedFd, path: &str, mode: u32, links: u32) -> nix::Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path, libc::O_PATH | libc::O_DIRECTORY) {
        return Ok(fd);
    }
    let mut cur = sys::openat2(
        root,
        ".",
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_ROOTED,
    )?;
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for (i, comp) in comps.iter().enumerate() {
        let prefix = comps[..=i].join("/");
        match open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => cur = fd,
            Err(Errno::ENOENT) => {
                if *comp == ".." {
                    return Err(Errno::ENOENT);
                }
                match nix::sys::stat::mkdirat(
                    Some(cur.as_raw_fd()),
                    *comp,
                    Mode::from_bits_truncate(mode),
                ) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        // A dangling symlink: create its target, inside root.
                        if links >= 40 {
                            return Err(Errno::ELOOP);
                        }
                        let target = nix::fcntl::readlinkat(Some(cur.as_raw_fd()), *comp)?;
                        let target = target.to_string_lossy();
                        let parent = comps[..i].join("/");
                        let rest = comps[i + 1..].join("/");
                        let joined = if target.starts_with('/') {
                            format!("{target}/{rest}")
                        } else {
                            format!("{parent}/{target}/{rest}")
                        };
                        return mkdir_all_depth(root, rel(&joined), mode, links + 1);
                    }
                    Err(e) => return Err(e),
                }
                cur = open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Ensure a regular file exists at `path` inside `root` (creating parent
/// directories) and return an O_PATH fd to it: the target of a file bind mount.
pub fn create_file_in_root(root: BorrowedFd, path: &str) -> nix::Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path, libc::O_PATH) {
        return Ok(fd);
    }
    let (dir, name) = split_parent(rel(path));
    let parent = mkdir_all_in_root(root, dir, 0o755)?;
    // The parent was resolved inside root; the last component is created
    // with O_NOFOLLOW semantics (O_CREAT|O_EXCL never follows a symlink).
    match sys::openat(
        Some(parent.as_raw_fd()),
        name,
        nix::fcntl::OFlag::O_CREAT
            | nix::fcntl::OFlag::O_EXCL
            | nix::fcntl::OFlag::O_WRONLY
            | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(fd) => drop(fd),
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open_in_root(root, path, libc::O_PATH)
}

/// The magic-link path through which the kernel reaches exactly the object
/// behind `fd`; used as a mount(2) target or source.
pub fn fd_path(fd: impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// Split "a/b/c" into ("a/b", "c").
pub fn split_parent(path: &str) -> (&str, &str) {
    let path = path.trim_end_matches('/');
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn rel(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    if p.is_empty() {
        "."
    } else {
        p
    }
}

/// A private procfs instance for writes the runtime makes inside the
/// container (sysctl, …). Files are opened beneath it without crossing any
/// mount or following any symlink, and the instance is checked to really be
/// procfs, so a config.json mount over /proc/sys cannot redirect a write
/// (CVE-2025-52881 class).
pub struct Procfs {
    root: OwnedFd,
}

impl Procfs {
    pub fn new() -> Result<Procfs> {
        let root = sys::fresh_procfs().context("creating a private procfs instance")?;
        let st = nix::sys::statfs::fstatfs(&root).context("statfs on private procfs")?;
        anyhow::ensure!(
            st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC,
            "private procfs is not procfs"
        );
        Ok(Procfs { root })
    }

    /// Write `data` to `/proc/<rel>`.
    pub fn write(&self, rel: &str, data: &str) -> Result<()> {
        let resolve = libc::RESOLVE_BENEATH
            | libc::RESOLVE_NO_XDEV
            | libc::RESOLVE_NO_SYMLINKS
            | libc::RESOLVE_NO_MAGICLINKS;
        let fd = sys::openat2(self.root.as_fd(), rel, libc::O_WRONLY, 0, resolve)
            .with_context(|| format!("opening /proc/{rel}"))?;
        nix::unistd::write(&fd, data.as_bytes())
            .with_context(|| format!("writing {data:?} to /proc/{rel}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn split_parent_cases() {
        assert_eq!(split_parent("a/b/c"), ("a/b", "c"));
        assert_eq!(split_parent("c"), ("", "c"));
        assert_eq!(split_parent("a/b/"), ("a", "b"));
    }

    #[test]
    fn symlink_out_of_root_stays_inside() {
        let base = std::env::temp_dir().join(format!("rcontain-safepath-{}", std::process::id()));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        symlink(&outside, root.join("evil")).unwrap();
        symlink("../../../..", root.join("up")).unwrap();
        let rootfd = sys::open(
            &root,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        mkdir_all_in_root(rootfd.as_fd(), "/evil/sub", 0o755).unwrap();
        mkdir_all_in_root(rootfd.as_fd(), "/up/x/y", 0o755).unwrap();
        create_file_in_root(rootfd.as_fd(), "/up/file").unwrap();
        // The absolute symlink target was re-rooted: the dirs appear under root.
        assert!(!outside.join("sub").exists());
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("sub")
            .is_dir());
        assert!(root.join("x/y").is_dir());
        assert!(root.join("file").is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
