//! Terminals: the container's pty is created from the container's own
//! devpts instance, its master handed to the caller over the console
//! socket with SCM_RIGHTS (what containerd and conmon expect), its slave
//! made the init's controlling terminal and stdio, and bound onto
//! /dev/console (runtime-spec).
//!
//! The image may plant symlinks at /dev/console, /dev/ptmx or /dev/pts
//! (CVE-2025-52565 class): the devpts is reached without following any
//! symlink and checked to be a devpts, the pty is allocated from its own
//! ptmx, and /dev/console is made a plain file in the rootfs, never
//! followed, before the slave's fd is bound onto it.

use crate::rootfs::safepath;
use crate::start::fdpass;
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use oci_spec::runtime::Box as ConsoleSize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Open a pty in the rootfs behind `root`, send its master over `sock` and
/// return the slave.
pub fn open_pty(root: &OwnedFd, size: Option<&ConsoleSize>, sock: &OwnedFd) -> Result<OwnedFd> {
    let master = open_ptmx(root.as_fd())?;
    sys::unlockpt(master.as_fd()).context("process.terminal: unlockpt")?;
    let slave = sys::pty_peer(master.as_fd()).context("process.terminal: opening the pty slave")?;
    if let Some(s) = size {
        sys::set_winsize(master.as_fd(), s.height() as u16, s.width() as u16)
            .context("process.consoleSize")?;
    }
    let name = std::fs::read_link(safepath::fd_path(&slave))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The pty's name as the payload, as runc sends it; never empty.
    let payload = if name.is_empty() {
        "pty"
    } else {
        name.as_str()
    };
    fdpass::send(sock.as_fd(), payload.as_bytes(), master.as_fd())
        .context("sending the pty master to the console socket")?;
    Ok(slave)
}

/// The ptmx of the devpts mounted at /dev/pts in the rootfs behind `root`.
/// Neither /dev nor /dev/pts may be a symlink, /dev/pts must be a devpts
/// and its ptmx the ptmx device of that very devpts: a pty from anywhere
/// else (a host devpts the image made reachable) is refused.
fn open_ptmx(root: BorrowedFd) -> Result<OwnedFd> {
    let pts = safepath::open_no_symlinks(root, "/dev/pts", libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| anyhow!("process.terminal: /dev/pts in the container: {}", e.desc()))?;
    let fs = nix::sys::statfs::fstatfs(&pts).context("process.terminal: statfs /dev/pts")?;
    if fs.filesystem_type() != nix::sys::statfs::DEVPTS_SUPER_MAGIC {
        bail!("process.terminal: /dev/pts in the container is not a devpts mount");
    }
    let pts_dev = stat_of(pts.as_fd())?.st_dev;
    let master = sys::openat(
        Some(pts.as_raw_fd()),
        "ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("process.terminal: opening /dev/pts/ptmx: {}", e.desc()))?;
    let st = stat_of(master.as_fd())?;
    if !is(&st, SFlag::S_IFCHR)
        || st.st_rdev != nix::sys::stat::makedev(5, 2)
        || st.st_dev != pts_dev
    {
        bail!("process.terminal: /dev/pts/ptmx is not the ptmx of the container's devpts");
    }
    Ok(master)
}

fn stat_of(fd: BorrowedFd) -> Result<FileStat> {
    fstat(fd.as_raw_fd()).context("process.terminal: fstat")
}

fn is(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

/// Bind the pty `slave` onto /dev/console in the rootfs behind `root`, as
/// the runtime-spec asks for a terminal. What the image put at
/// /dev/console is never followed: a symlink (or fifo, socket, ...) there
/// is removed and a plain file made in its place; the mount goes onto
/// that file through its fd.
pub fn bind_console(root: &OwnedFd, slave: &OwnedFd) -> Result<()> {
    let err = |what: &str, e: nix::errno::Errno| anyhow!("/dev/console: {what}: {}", e.desc());
    let dev = safepath::mkdir_all_no_symlinks(root.as_fd(), "/dev", 0o755)
        .map_err(|e| err("/dev in the container", e))?;
    let at = Some(dev.as_raw_fd());
    match nix::sys::stat::fstatat(at, "console", nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if is(&st, SFlag::S_IFREG) || is(&st, SFlag::S_IFCHR) => {}
        Ok(st) if is(&st, SFlag::S_IFDIR) => bail!("/dev/console in the container is a directory"),
        Ok(_) => {
            nix::unistd::unlinkat(at, "console", nix::unistd::UnlinkatFlags::NoRemoveDir)
                .map_err(|e| err("removing what the image put there", e))?;
            create_file(at)?;
        }
        Err(nix::errno::Errno::ENOENT) => create_file(at)?,
        Err(e) => return Err(err("stat", e)),
    }
    let target = sys::openat(
        at,
        "console",
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("open", e))?;
    let st = stat_of(target.as_fd())?;
    if !is(&st, SFlag::S_IFREG) && !is(&st, SFlag::S_IFCHR) {
        bail!("/dev/console in the container was replaced while being set up");
    }
    // The pty onto the file's fd: no /proc/self/fd link looked up (see
    // mounts::bind_fd); the mount's fd is not needed afterwards.
    crate::rootfs::mounts::bind_fd(
        &crate::kernel::Host,
        slave.as_fd(),
        target.as_fd(),
        false,
        || {
            sys::openat(
                at,
                "console",
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| err("reopening", e))
        },
    )
    .map(drop)
    .context("/dev/console: bind mounting the pty")
}

/// A new empty file `console` in the directory `at`; O_EXCL never follows
/// a symlink that appeared meanwhile, it fails.
fn create_file(at: Option<i32>) -> Result<()> {
    sys::openat(
        at,
        "console",
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map(drop)
    .map_err(|e| anyhow!("/dev/console: creating it: {}", e.desc()))
}

/// New session with the pty as controlling terminal and stdio.
pub fn become_controlling(slave: OwnedFd) -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    sys::set_controlling_tty(slave.as_fd()).context("TIOCSCTTY")?;
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd).context("dup2 of the pty slave")?;
    }
    Ok(())
}

/// The fd (a pty master) sent to a console socket.
pub fn recv_fd(sock: BorrowedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    fdpass::recv(sock, &mut buf)
        .context("receiving from the console socket")?
        .1
        .ok_or_else(|| anyhow!("no file descriptor received on the console socket"))
}
