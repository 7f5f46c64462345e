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
/// Resolution for the places where a symlink is never acceptable: where
/// procfs and sysfs are mounted, anything over procfs, /dev/console.
const RESOLVE_STRICT: u64 = RESOLVE_ROOTED | libc::RESOLVE_NO_SYMLINKS;

/// Open `path` (interpreted inside `root`) with `flags`.
pub fn open_in_root(root: BorrowedFd, path: &str, flags: i32) -> nix::Result<OwnedFd> {
    sys::openat2(root, rel(path), flags, 0, RESOLVE_ROOTED)
}

/// Like `open_in_root`, but ELOOP if any component of `path` is a symlink.
pub fn open_no_symlinks(root: BorrowedFd, path: &str, flags: i32) -> nix::Result<OwnedFd> {
    sys::openat2(root, rel(path), flags, 0, RESOLVE_STRICT)
}

/// Like `mkdir -p`, but every component is resolved inside `root`; a
/// dangling symlink on the way is followed (inside root) and its target
/// created. Returns an O_PATH fd of the final directory.
pub fn mkdir_all_in_root(root: BorrowedFd, path: &str, mode: u32) -> nix::Result<OwnedFd> {
    mkdir_all_depth(root, rel(path), mode, RESOLVE_ROOTED, 0)
}

/// Open `path` below the directory `dir`, never leaving it (`..` or an
/// absolute symlink that would is EXDEV) nor following a magic link.
pub fn open_beneath(dir: BorrowedFd, path: &str, flags: i32) -> nix::Result<OwnedFd> {
    let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    sys::openat2(dir, rel(path), flags, 0, resolve)
}

/// Like `mkdir_all_in_root`, but every component must be a real
/// directory: a symlink anywhere on the path is ELOOP, never followed.
pub fn mkdir_all_no_symlinks(root: BorrowedFd, path: &str, mode: u32) -> nix::Result<OwnedFd> {
    mkdir_all_depth(root, rel(path), mode, RESOLVE_STRICT, 0)
}

fn mkdir_all_depth(
    root: BorrowedFd,
    path: &str,
    mode: u32,
    resolve: u64,
    links: u32,
) -> nix::Result<OwnedFd> {
    let open = |p: &str| sys::openat2(root, p, libc::O_PATH | libc::O_DIRECTORY, 0, resolve);
    match open(path) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ELOOP) if resolve & libc::RESOLVE_NO_SYMLINKS != 0 => return Err(Errno::ELOOP),
        Err(_) => {}
    }
    let mut cur = open(".")?;
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for (i, comp) in comps.iter().enumerate() {
        let prefix = comps[..=i].join("/");
        match open(&prefix) {
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
                    // Something other than a directory is in the way.
                    Err(Errno::EEXIST) if resolve & libc::RESOLVE_NO_SYMLINKS != 0 => {
                        return Err(Errno::ELOOP)
                    }
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
                        return mkdir_all_depth(root, rel(&joined), mode, resolve, links + 1);
                    }
                    Err(e) => return Err(e),
                }
                cur = open(&prefix)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Ensure a regular file exists at `path` inside `root` (creating parent
/// directories) and return an O_PATH fd to it: the target of a file bind mount.
pub fn create_file_in_root(root: BorrowedFd, path: &str) -> nix::Result<OwnedFd> {
    create_file(root, path, RESOLVE_ROOTED)
}

/// Like `create_file_in_root`, but ELOOP if any component of `path`,
/// the file itself included, is a symlink.
pub fn create_file_no_symlinks(root: BorrowedFd, path: &str) -> nix::Result<OwnedFd> {
    create_file(root, path, RESOLVE_STRICT)
}

fn create_file(root: BorrowedFd, path: &str, resolve: u64) -> nix::Result<OwnedFd> {
    let open = || sys::openat2(root, rel(path), libc::O_PATH, 0, resolve);
    match open() {
        Ok(fd) => return Ok(fd),
        Err(Errno::ELOOP) if resolve & libc::RESOLVE_NO_SYMLINKS != 0 => return Err(Errno::ELOOP),
        Err(_) => {}
    }
    let (dir, name) = split_parent(rel(path));
    let parent = mkdir_all_depth(root, rel(dir), 0o755, resolve, 0)?;
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
    open()
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

/// An O_PATH fd of the runtime's /proc (the host's), checked to be
/// procfs, for the init to read its own /proc/self files after it joined a
/// mount namespace by path, whose /proc that namespace's owner controls.
pub fn host_proc() -> Result<OwnedFd> {
    let fd = sys::open(
        "/proc",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("opening /proc")?;
    let st = nix::sys::statfs::fstatfs(&fd).context("statfs on /proc")?;
    anyhow::ensure!(
        st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC,
        "/proc is not procfs"
    );
    Ok(fd)
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

    #[test]
    fn strict_resolution_refuses_every_symlink() {
        let base = std::env::temp_dir().join(format!("rcontain-strict-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("real")).unwrap();
        symlink("real", root.join("link")).unwrap();
        symlink("/nowhere", root.join("dangling")).unwrap();
        std::fs::write(root.join("real/file"), "").unwrap();
        symlink("file", root.join("real/filelink")).unwrap();
        let rootfd = sys::open(
            &root,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let r = rootfd.as_fd();
        mkdir_all_no_symlinks(r, "/real/a/b", 0o755).unwrap();
        assert!(root.join("real/a/b").is_dir());
        create_file_no_symlinks(r, "/real/a/f").unwrap();
        assert!(root.join("real/a/f").is_file());
        for p in ["/link", "/link/x", "/dangling", "/dangling/x"] {
            assert_eq!(
                mkdir_all_no_symlinks(r, p, 0o755).unwrap_err(),
                Errno::ELOOP,
                "{p}"
            );
        }
        for p in ["/link/file", "/real/filelink", "/dangling"] {
            assert_eq!(
                create_file_no_symlinks(r, p).unwrap_err(),
                Errno::ELOOP,
                "{p}"
            );
        }
        // Nothing was created through the links.
        assert!(!root.join("nowhere").exists());
        assert!(!root.join("real/x").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
