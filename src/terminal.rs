//! Terminals: the container's pty is created from the container's own
//! devpts instance, its master handed to the caller over the console
//! socket with SCM_RIGHTS (what containerd and conmon expect), its slave
//! made the init's controlling terminal and stdio.

use crate::rootfs::safepath;
use crate::start::fdpass;
use crate::sys;
use anyhow::{anyhow, Context, Result};
use oci_spec::runtime::Box as ConsoleSize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

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
