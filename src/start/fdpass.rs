//! Passing one file descriptor with a message over a unix socket
//! (SCM_RIGHTS): the pty master to the console socket, the seccomp notify
//! fd over the sync channel and on to the seccomp agent.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Sends `payload` with `fd` attached to its first byte; returns how many
/// bytes went (a stream socket may take fewer). `payload` must not be
/// empty: the fd travels with data. EPIPE rather than SIGPIPE when the
/// peer is gone.
pub fn send(sock: BorrowedFd, payload: &[u8], fd: BorrowedFd) -> nix::Result<usize> {
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(payload)],
        &[ControlMessage::ScmRights(&[fd.as_raw_fd()])],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
}

/// Receives one message into `buf`: its length (0 at EOF) and the fd that
/// came with it, close-on-exec. Any further fds are closed.
pub fn recv(sock: BorrowedFd, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS installed these fds in our table just now;
            // nothing else owns them.
            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    Ok((msg.bytes, fds.into_iter().next()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn an_fd_and_its_payload_arrive_together() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(send(a.as_fd(), b"hello", f.as_fd()).unwrap(), 5);
        let mut buf = [0u8; 16];
        let (n, fd) = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let fd = fd.expect("an fd");
        let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        assert_eq!(target.unwrap(), std::path::Path::new("/dev/null"));
        let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "not close-on-exec");
        drop(a);
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap().0, 0);
    }
}
