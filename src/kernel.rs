//! The seam between the runtime's logic and the kernel calls that need
//! privilege: joining and creating namespaces, making device nodes and
//! giving them away, bind mounts. Code that decides *which* of these calls
//! to make, and in which order, takes a `&dyn Kernel`; the runtime passes
//! [`Host`], which makes the calls, and unit tests pass [`Recorder`],
//! which writes them down (and does the unprivileged part: a "device node"
//! is an empty regular file), so that logic is tested without root.
//!
//! Only calls whose outcome the logic does not inspect go through here;
//! path resolution inside the rootfs (`rootfs::safepath`) stays real, as
//! it works on a temp dir without root.

use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::{AsRawFd, BorrowedFd};

pub trait Kernel {
    /// setns(2) into the namespace of type `t` that `fd` refers to.
    fn setns(&self, fd: BorrowedFd, t: LinuxNamespaceType) -> nix::Result<()>;
    /// unshare(2) of the CLONE_NEW* `flags`.
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    /// After entering a user namespace: become its root (see
    /// namespaces::become_userns_root).
    fn become_userns_root(&self) -> anyhow::Result<()>;
    /// mknodat(2) of `name` in the directory `dir`.
    fn mknodat(
        &self,
        dir: BorrowedFd,
        name: &str,
        kind: SFlag,
        mode: Mode,
        dev: u64,
    ) -> nix::Result<()>;
    /// fchownat(2) of `name` in `dir`, not following a symlink.
    fn chown_at(&self, dir: BorrowedFd, name: &str, uid: u32, gid: u32) -> nix::Result<()>;
    /// Bind mounts the runtime's `source` onto the mount point `target`
    /// (an fd, reached through its /proc/self/fd link: never a re-walked
    /// path).
    fn bind_mount(&self, source: &str, target: BorrowedFd) -> nix::Result<()>;
}

/// The real kernel.
pub struct Host;

impl Kernel for Host {
    fn setns(&self, fd: BorrowedFd, t: LinuxNamespaceType) -> nix::Result<()> {
        crate::sys::setns(fd, crate::namespaces::clone_flag(t) as i32)
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }

    fn become_userns_root(&self) -> anyhow::Result<()> {
        crate::namespaces::become_userns_root()
    }

    fn mknodat(
        &self,
        dir: BorrowedFd,
        name: &str,
        kind: SFlag,
        mode: Mode,
        dev: u64,
    ) -> nix::Result<()> {
        nix::sys::stat::mknodat(Some(dir.as_raw_fd()), name, kind, mode, dev)
    }

    fn chown_at(&self, dir: BorrowedFd, name: &str, uid: u32, gid: u32) -> nix::Result<()> {
        nix::unistd::fchownat(
            Some(dir.as_raw_fd()),
            name,
            Some(uid.into()),
            Some(gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    }

    fn bind_mount(&self, source: &str, target: BorrowedFd) -> nix::Result<()> {
        mount(
            Some(source),
            format!("/proc/self/fd/{}", target.as_raw_fd()).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
}

/// One call a [`Recorder`] saw; paths are those of the fds' targets.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// the type of the namespace joined
    Setns(LinuxNamespaceType),
    Unshare(CloneFlags),
    BecomeRoot,
    Mknod {
        path: std::path::PathBuf,
        kind: SFlag,
        mode: u32,
        dev: u64,
    },
    Chown {
        path: std::path::PathBuf,
        uid: u32,
        gid: u32,
    },
    Bind {
        source: String,
        target: std::path::PathBuf,
    },
}

/// Records calls instead of making them (see the module doc).
#[cfg(test)]
#[derive(Default)]
pub struct Recorder {
    pub calls: std::cell::RefCell<Vec<Call>>,
}

#[cfg(test)]
impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn record(&self, c: Call) -> nix::Result<()> {
        self.calls.borrow_mut().push(c);
        Ok(())
    }

    fn path(fd: BorrowedFd, name: &str) -> std::path::PathBuf {
        let dir =
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("an fd's link");
        if name.is_empty() {
            dir
        } else {
            dir.join(name)
        }
    }
}

#[cfg(test)]
impl Kernel for Recorder {
    fn setns(&self, _fd: BorrowedFd, t: LinuxNamespaceType) -> nix::Result<()> {
        self.record(Call::Setns(t))
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        self.record(Call::Unshare(flags))
    }

    fn become_userns_root(&self) -> anyhow::Result<()> {
        Ok(self.record(Call::BecomeRoot)?)
    }

    fn mknodat(
        &self,
        dir: BorrowedFd,
        name: &str,
        kind: SFlag,
        mode: Mode,
        dev: u64,
    ) -> nix::Result<()> {
        // What is made afterwards (chmod) finds a file there.
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        nix::unistd::close(fd)?;
        self.record(Call::Mknod {
            path: Self::path(dir, name),
            kind,
            mode: mode.bits(),
            dev,
        })
    }

    fn chown_at(&self, dir: BorrowedFd, name: &str, uid: u32, gid: u32) -> nix::Result<()> {
        self.record(Call::Chown {
            path: Self::path(dir, name),
            uid,
            gid,
        })
    }

    fn bind_mount(&self, source: &str, target: BorrowedFd) -> nix::Result<()> {
        self.record(Call::Bind {
            source: source.to_string(),
            target: Self::path(target, ""),
        })
    }
}
