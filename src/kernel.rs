//! The seam between the runtime's logic and the kernel calls that need
//! privilege: joining and creating namespaces, making device nodes and
//! giving them away, mounts (mount(2), the open_tree/move_mount/fsopen
//! family, mount_setattr), pivot_root, chroot and umount. Code that decides *which* of these calls
//! to make, and in which order, takes a `&dyn Kernel`; the runtime passes
//! [`Host`], which makes the calls, and unit tests pass [`Recorder`],
//! which writes them down (and does the unprivileged part: a "device node"
//! is an empty regular file), so that logic is tested without root.
//!
//! Only calls whose outcome the logic does not inspect go through here;
//! path resolution inside the rootfs (`rootfs::safepath`), statfs and
//! statvfs stay real, as they work on a temp dir without root. A
//! Recorder's "mount" is an fd of the directory that would be mounted: of
//! the source for a bind, of a fresh empty directory for a new
//! filesystem, so what is made inside a mount lands in a temp dir.

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::LinuxNamespaceType;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

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
    /// (an fd, which move_mount takes as it is: never a re-walked path nor
    /// a /proc/self/fd link, but where open_tree is missing).
    fn bind_mount(&self, source: &str, target: BorrowedFd) -> nix::Result<()>;
    /// mount(2).
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    /// umount2(2) with MNT_DETACH.
    fn umount_detach(&self, target: &Path) -> nix::Result<()>;
    /// pivot_root(".", "."): the old root stacked on the new one.
    fn pivot_root_here(&self) -> nix::Result<()>;
    fn chroot(&self, path: &Path) -> nix::Result<()>;
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    fn fchdir(&self, dir: BorrowedFd) -> nix::Result<()>;
    /// sys::open_tree_clone: a detached copy of the mount (tree) at `path`.
    fn open_tree_clone(&self, path: &CStr, recursive: bool) -> nix::Result<OwnedFd>;
    /// sys::open_tree_clone_fd: the same, of what `src` names.
    fn open_tree_clone_fd(&self, src: BorrowedFd, recursive: bool) -> nix::Result<OwnedFd>;
    /// sys::attach_mount_at: move_mount of the detached `m` onto `target`.
    fn attach_mount_at(&self, m: BorrowedFd, target: BorrowedFd) -> nix::Result<()>;
    /// sys::new_mount: a new, detached `fstype` filesystem.
    fn new_mount(
        &self,
        fstype: &str,
        opts: &[crate::sys::FsOption],
        attrs: u64,
    ) -> nix::Result<OwnedFd>;
    /// sys::mount_setattr.
    fn mount_setattr(
        &self,
        dir: BorrowedFd,
        path: &str,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> nix::Result<()>;
    /// sys::set_propagation.
    fn set_propagation(&self, m: BorrowedFd, propagation: u64, recursive: bool) -> nix::Result<()>;
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
        let c = std::ffi::CString::new(source).map_err(|_| nix::errno::Errno::EINVAL)?;
        match crate::sys::open_tree_clone(&c, false) {
            Ok(m) => return crate::sys::attach_mount_at(m.as_fd(), target),
            // No open_tree (before Linux 5.2, or a seccomp profile):
            // mount(2) onto the target's /proc/self/fd link.
            Err(nix::errno::Errno::ENOSYS) => {}
            Err(e) => return Err(e),
        }
        nix::mount::mount(
            Some(source),
            format!("/proc/self/fd/{}", target.as_raw_fd()).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount_detach(&self, target: &Path) -> nix::Result<()> {
        nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)
    }

    fn pivot_root_here(&self) -> nix::Result<()> {
        nix::unistd::pivot_root(".", ".")
    }

    fn chroot(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chroot(path)
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }

    fn fchdir(&self, dir: BorrowedFd) -> nix::Result<()> {
        nix::unistd::fchdir(dir.as_raw_fd())
    }

    fn open_tree_clone(&self, path: &CStr, recursive: bool) -> nix::Result<OwnedFd> {
        crate::sys::open_tree_clone(path, recursive)
    }

    fn open_tree_clone_fd(&self, src: BorrowedFd, recursive: bool) -> nix::Result<OwnedFd> {
        crate::sys::open_tree_clone_fd(src, recursive)
    }

    fn attach_mount_at(&self, m: BorrowedFd, target: BorrowedFd) -> nix::Result<()> {
        crate::sys::attach_mount_at(m, target)
    }

    fn new_mount(
        &self,
        fstype: &str,
        opts: &[crate::sys::FsOption],
        attrs: u64,
    ) -> nix::Result<OwnedFd> {
        crate::sys::new_mount(fstype, opts, attrs)
    }

    fn mount_setattr(
        &self,
        dir: BorrowedFd,
        path: &str,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> nix::Result<()> {
        crate::sys::mount_setattr(dir, path, recursive, set, clear)
    }

    fn set_propagation(&self, m: BorrowedFd, propagation: u64, recursive: bool) -> nix::Result<()> {
        crate::sys::set_propagation(m, propagation, recursive)
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
        path: PathBuf,
        kind: SFlag,
        mode: u32,
        dev: u64,
    },
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
    },
    Bind {
        source: String,
        target: PathBuf,
    },
    /// mount(2); a /proc/self/fd/N target is given as the fd's path
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount(PathBuf),
    PivotRoot,
    Chroot(PathBuf),
    Chdir(PathBuf),
    OpenTree {
        source: PathBuf,
        recursive: bool,
    },
    /// a new filesystem: its type and fsconfig options (`key=value`, `flag`)
    NewFs {
        fstype: String,
        options: Vec<String>,
        attrs: u64,
    },
    /// move_mount of the detached mount `mount` onto `target`
    Attach {
        mount: PathBuf,
        target: PathBuf,
    },
    SetAttr {
        path: PathBuf,
        recursive: bool,
        set: u64,
        clear: u64,
    },
    Propagation {
        path: PathBuf,
        propagation: u64,
        recursive: bool,
    },
}

/// Records calls instead of making them (see the module doc).
#[cfg(test)]
#[derive(Default)]
pub struct Recorder {
    pub calls: std::cell::RefCell<Vec<Call>>,
    /// the directories made for new filesystems, removed on drop
    scratch: std::cell::RefCell<Vec<PathBuf>>,
}

#[cfg(test)]
impl Drop for Recorder {
    fn drop(&mut self) {
        for d in self.scratch.borrow().iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
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

    /// The new filesystems made so far (the directories that stand for
    /// them), in order.
    pub fn new_filesystems(&self) -> Vec<PathBuf> {
        self.scratch.borrow().clone()
    }

    fn open_path(path: &std::path::Path) -> nix::Result<OwnedFd> {
        crate::sys::open(
            path,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }

    /// A /proc/self/fd/N path as the path of the fd's file.
    fn resolve(path: &Path) -> PathBuf {
        if path.starts_with("/proc/self/fd") {
            if let Ok(p) = std::fs::read_link(path) {
                return p;
            }
        }
        path.into()
    }

    fn path(fd: BorrowedFd, name: &str) -> PathBuf {
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

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        self.record(Call::Mount {
            source: source.map(Self::resolve),
            target: Self::resolve(target),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }

    fn umount_detach(&self, target: &Path) -> nix::Result<()> {
        self.record(Call::Umount(target.into()))
    }

    fn pivot_root_here(&self) -> nix::Result<()> {
        self.record(Call::PivotRoot)
    }

    fn chroot(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chroot(path.into()))
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chdir(path.into()))
    }

    fn fchdir(&self, dir: BorrowedFd) -> nix::Result<()> {
        self.record(Call::Chdir(Self::path(dir, "")))
    }

    fn open_tree_clone(&self, path: &CStr, recursive: bool) -> nix::Result<OwnedFd> {
        let source = PathBuf::from(path.to_string_lossy().into_owned());
        let fd = Self::open_path(&source)?;
        self.record(Call::OpenTree { source, recursive })?;
        Ok(fd)
    }

    fn open_tree_clone_fd(&self, src: BorrowedFd, recursive: bool) -> nix::Result<OwnedFd> {
        let source = Self::path(src, "");
        let fd = Self::open_path(&source)?;
        self.record(Call::OpenTree { source, recursive })?;
        Ok(fd)
    }

    fn attach_mount_at(&self, m: BorrowedFd, target: BorrowedFd) -> nix::Result<()> {
        self.record(Call::Attach {
            mount: Self::path(m, ""),
            target: Self::path(target, ""),
        })
    }

    fn new_mount(
        &self,
        fstype: &str,
        opts: &[crate::sys::FsOption],
        attrs: u64,
    ) -> nix::Result<OwnedFd> {
        let n = self.scratch.borrow().len();
        let dir = std::env::temp_dir().join(format!(
            "rcontain-recorder-{}-{:p}-{n}",
            std::process::id(),
            self
        ));
        std::fs::create_dir(&dir).map_err(|_| nix::errno::Errno::EIO)?;
        self.scratch.borrow_mut().push(dir.clone());
        let options = opts
            .iter()
            .map(|o| match *o {
                crate::sys::FsOption::String(k, v) => format!("{k}={v}"),
                crate::sys::FsOption::Flag(f) => f.to_string(),
            })
            .collect();
        self.record(Call::NewFs {
            fstype: fstype.to_string(),
            options,
            attrs,
        })?;
        Self::open_path(&dir)
    }

    fn mount_setattr(
        &self,
        dir: BorrowedFd,
        path: &str,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> nix::Result<()> {
        self.record(Call::SetAttr {
            path: Self::path(dir, path),
            recursive,
            set,
            clear,
        })
    }

    fn set_propagation(&self, m: BorrowedFd, propagation: u64, recursive: bool) -> nix::Result<()> {
        self.record(Call::Propagation {
            path: Self::path(m, ""),
            propagation,
            recursive,
        })
    }
}
