//! The parent <-> init synchronisation channel: a SOCK_SEQPACKET socketpair,
//! so every message arrives whole, and EOF tells either side that the other
//! one died. Messages are one tag byte followed by a payload.

use anyhow::{bail, Context, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// What the container's side (intermediate, init, exec'd process) tells
/// the runtime. The runtime's only message back is "continue": the two
/// directions are two types, so neither side can send the other's words.
#[derive(Debug)]
pub enum Up {
    /// a new user namespace exists; write its id maps.
    MapIds,
    /// run the prestart and createRuntime hooks now.
    Hooks,
    /// set up and waiting for `start`.
    Ready,
    /// (intermediate) the init's pid, when a second fork was needed, and
    /// whether it was born in the container's cgroup2 directory.
    Pid(i32, bool),
    /// setup failed; the message says why.
    Error(String),
    /// the seccomp notification fd (for listenerPath).
    SeccompFd(OwnedFd),
}

/// The runtime's end: it hears `Up` and answers `send_continue`.
pub struct RuntimeEnd {
    fd: OwnedFd,
}

/// The container side's end: it sends `Up` and waits for "continue".
pub struct ChildEnd {
    fd: OwnedFd,
}

/// A connected pair. Both ends are CLOEXEC, so neither can survive into
/// the container's process.
pub fn pair() -> Result<(RuntimeEnd, ChildEnd)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    Ok((RuntimeEnd { fd: a }, ChildEnd { fd: b }))
}

impl AsFd for RuntimeEnd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for ChildEnd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

const CONTINUE: u8 = b'c';

/// One packet, retried on EINTR; MSG_NOSIGNAL: a gone peer is an error,
/// not a SIGPIPE.
fn send_packet(fd: BorrowedFd, buf: &[u8]) -> Result<()> {
    loop {
        match nix::sys::socket::send(
            fd.as_raw_fd(),
            buf,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map(drop).context("sending on the sync socket"),
        }
    }
}

/// One packet and the fd it may carry; `None` on EOF.
fn recv_packet(fd: BorrowedFd) -> Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    let mut buf = vec![0u8; 65536];
    let (n, passed) = loop {
        match crate::start::fdpass::recv(fd, &mut buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.context("reading the sync socket")?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some((buf, passed)))
}

impl RuntimeEnd {
    pub fn send_continue(&self) -> Result<()> {
        send_packet(self.fd.as_fd(), &[CONTINUE])
    }

    /// The next message; `None` on EOF (the other side is gone).
    pub fn recv(&self) -> Result<Option<Up>> {
        let Some((buf, fd)) = recv_packet(self.fd.as_fd())? else {
            return Ok(None);
        };
        let payload = &buf[1..];
        Ok(Some(match buf[0] {
            b'm' => Up::MapIds,
            b'h' => Up::Hooks,
            b'r' => Up::Ready,
            b'p' if payload.len() == 5 => Up::Pid(
                i32::from_le_bytes(payload[..4].try_into().unwrap()),
                payload[4] != 0,
            ),
            b'e' => Up::Error(String::from_utf8_lossy(payload).into_owned()),
            b's' => {
                Up::SeccompFd(fd.ok_or_else(|| anyhow::anyhow!("seccomp message without an fd"))?)
            }
            t => bail!("unexpected sync message tag {t:#x}"),
        }))
    }
}

impl ChildEnd {
    pub fn send(&self, m: &Up) -> Result<()> {
        let mut buf = Vec::with_capacity(8);
        match m {
            Up::MapIds => buf.push(b'm'),
            Up::Hooks => buf.push(b'h'),
            Up::Ready => buf.push(b'r'),
            Up::Pid(p, in_cgroup) => {
                buf.push(b'p');
                buf.extend_from_slice(&p.to_le_bytes());
                buf.push(u8::from(*in_cgroup));
            }
            Up::Error(s) => {
                buf.push(b'e');
                buf.extend_from_slice(s.as_bytes());
            }
            Up::SeccompFd(fd) => {
                return crate::start::fdpass::send(self.fd.as_fd(), b"s", fd.as_fd())
                    .map(drop)
                    .context("sending on the sync socket");
            }
        }
        send_packet(self.fd.as_fd(), &buf)
    }

    /// Wait for the runtime's "continue"; EOF means the runtime is gone.
    pub fn wait_continue(&self) -> Result<()> {
        match recv_packet(self.fd.as_fd())? {
            Some((buf, _)) if buf == [CONTINUE] => Ok(()),
            Some((buf, _)) => bail!("unexpected sync message tag {:#x}", buf[0]),
            None => bail!("the runtime went away during setup"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let (rt, child) = pair().unwrap();
        for m in [
            Up::MapIds,
            Up::Hooks,
            Up::Ready,
            Up::Pid(4242, true),
            Up::Pid(7, false),
            Up::Error("boom: x".into()),
        ] {
            child.send(&m).unwrap();
            assert_eq!(
                format!("{:?}", rt.recv().unwrap()),
                format!("{:?}", Some(m))
            );
        }
        rt.send_continue().unwrap();
        child.wait_continue().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        child.send(&Up::SeccompFd(f.into())).unwrap();
        match rt.recv().unwrap() {
            Some(Up::SeccompFd(fd)) => {
                let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                assert_eq!(target.unwrap(), std::path::Path::new("/dev/null"));
            }
            m => panic!("expected an fd, got {m:?}"),
        }
        drop(child);
        assert!(rt.recv().unwrap().is_none());
    }

    #[test]
    fn the_runtime_going_away_is_an_error_for_the_child() {
        let (rt, child) = pair().unwrap();
        drop(rt);
        assert!(child.wait_continue().is_err());
    }
}
