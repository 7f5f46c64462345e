//! The parent <-> init synchronisation channel: a SOCK_SEQPACKET socketpair,
//! so every message arrives whole, and EOF tells either side that the other
//! one died. Messages are one tag byte followed by a payload.

use anyhow::{bail, Context, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

#[derive(Debug)]
pub enum Msg {
    /// parent -> init: go on with the next step.
    Continue,
    /// init -> parent: a new user namespace exists; write its id maps.
    MapIds,
    /// init -> parent: run the prestart and createRuntime hooks now.
    Hooks,
    /// init -> parent: set up and waiting for `start`.
    Ready,
    /// intermediate -> parent: the init's pid (when a second fork was
    /// needed) and whether it was born in the container's cgroup2 directory.
    Pid(i32, bool),
    /// init -> parent: setup failed; the message says why.
    Error(String),
    /// init -> parent: the seccomp notification fd (for listenerPath).
    SeccompFd(OwnedFd),
}

pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (parent end, child end). Both are CLOEXEC, so neither
/// can survive into the container's process.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Channel {
    pub fn send(&self, m: &Msg) -> Result<()> {
        let mut buf = Vec::with_capacity(8);
        match m {
            Msg::Continue => buf.push(b'c'),
            Msg::MapIds => buf.push(b'm'),
            Msg::Hooks => buf.push(b'h'),
            Msg::Ready => buf.push(b'r'),
            Msg::Pid(p, in_cgroup) => {
                buf.push(b'p');
                buf.extend_from_slice(&p.to_le_bytes());
                buf.push(u8::from(*in_cgroup));
            }
            Msg::Error(s) => {
                buf.push(b'e');
                buf.extend_from_slice(s.as_bytes());
            }
            Msg::SeccompFd(fd) => {
                crate::start::fdpass::send(self.fd.as_fd(), b"s", fd.as_fd())
                    .context("sending on the sync socket")?;
                return Ok(());
            }
        }
        loop {
            match nix::sys::socket::send(
                self.fd.as_raw_fd(),
                &buf,
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map(drop).context("sending on the sync socket"),
            }
        }
    }

    /// Receive one message; `None` on EOF (the other side is gone).
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 65536];
        let (n, fd) = loop {
            match crate::start::fdpass::recv(self.fd.as_fd(), &mut buf) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.context("reading the sync socket")?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let payload = &buf[1..n];
        Ok(Some(match buf[0] {
            b'c' => Msg::Continue,
            b'm' => Msg::MapIds,
            b'h' => Msg::Hooks,
            b'r' => Msg::Ready,
            b'p' if payload.len() == 5 => Msg::Pid(
                i32::from_le_bytes(payload[..4].try_into().unwrap()),
                payload[4] != 0,
            ),
            b'e' => Msg::Error(String::from_utf8_lossy(payload).into_owned()),
            b's' => {
                Msg::SeccompFd(fd.ok_or_else(|| anyhow::anyhow!("seccomp message without an fd"))?)
            }
            t => bail!("unexpected sync message tag {t:#x}"),
        }))
    }

    /// Wait for `Continue`; anything else is a protocol error.
    pub fn wait_continue(&self) -> Result<()> {
        match self.recv()? {
            Some(Msg::Continue) => Ok(()),
            Some(m) => bail!("unexpected sync message {m:?}"),
            None => bail!("the runtime went away during setup"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::Continue,
            Msg::MapIds,
            Msg::Hooks,
            Msg::Ready,
            Msg::Pid(4242, true),
            Msg::Pid(7, false),
            Msg::Error("boom: x".into()),
        ] {
            a.send(&m).unwrap();
            assert_eq!(format!("{:?}", b.recv().unwrap()), format!("{:?}", Some(m)));
        }
        let f = std::fs::File::open("/dev/null").unwrap();
        a.send(&Msg::SeccompFd(f.into())).unwrap();
        match b.recv().unwrap() {
            Some(Msg::SeccompFd(fd)) => {
                let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                assert_eq!(target.unwrap(), std::path::Path::new("/dev/null"));
            }
            m => panic!("expected an fd, got {m:?}"),
        }
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }
}
