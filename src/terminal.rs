//! Terminals: the container's pty is created from the container's own
//! devpts instance, its master handed to the caller over the console
//! socket with SCM_RIGHTS (what containerd and conmon expect), its slave
//! made the init's controlling terminal and stdio.

use crate::safepath;
use crate::sys;
use anyhow::{anyhow, Context, Result};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::Box as ConsoleSize;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Open a pty in the rootfs behind `root`, send its master over `sock` and
/// return the slave.
pub fn open_pty(root: &OwnedFd, size: Option<&ConsoleSize>, sock: &OwnedFd) -> Result<OwnedFd> {
    let master = safepath::open_in_root(root.as_fd(), "/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY)
        .map_err(|e| {
        anyhow!(
            "process.terminal: opening /dev/ptmx in the container: {}",
            e.desc()
        )
    })?;
    sys::unlockpt(master.as_fd()).context("process.terminal: unlockpt")?;
    let slave = sys::pty_peer(master.as_fd()).context("process.terminal: opening the pty slave")?;
    if let Some(s) = size {
        sys::set_winsize(master.as_fd(), s.height() as u16, s.width() as u16)
            .context("process.consoleSize")?;
    }
    let name = std::fs::read_link(safepath::fd_path(&slave))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    send_fd(sock.as_raw_fd(), master.as_raw_fd(), name.as_bytes())
        .context("sending the pty master to the console socket")?;
    Ok(slave)
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

pub fn send_fd(sock: RawFd, fd: RawFd, payload: &[u8]) -> Result<()> {
    let fds = [fd];
    let payload = if payload.is_empty() {
        b"pty".as_slice()
    } else {
        payload
    };
    sendmsg::<()>(
        sock,
        &[IoSlice::new(payload)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel installed this fd for us with SCM_RIGHTS.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(anyhow!("no file descriptor received on the console socket"))
}
