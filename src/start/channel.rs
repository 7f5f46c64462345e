//! The parent <-> init synchronisation channel: a SOCK_SEQPACKET socketpair,
//! so every message arrives whole, and EOF tells either side that the other
//! one died. Messages are one tag byte followed by a payload.
//!
//! The handshake is a fixed sequence of steps, the same on both sides,
//! which both derive from the config before the fork (whether the
//! intermediate asks for id maps, whether the init asks for hooks or hands
//! over a seccomp notify fd). Each step is a method that sends or expects
//! that step's message only; the steps after the runtime has placed the
//! process (its cgroup, ids) are methods of a token that only that step
//! returns. A message out of place is an error naming the step.
//!
//! Create, with an intermediate (spawn.rs): [MapIds → continue] → Pid.
//! Create, the init: continue (placed) → [Hooks → continue] → [SeccompFd]
//! → Ready. Exec: continue (placed) → [SeccompFd → continue] → EOF (the
//! channel is close-on-exec). Any step may get Error instead: setup failed.

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// What the container's side (intermediate, init, exec'd process) tells
/// the runtime; the runtime's only word back is "continue". Private: only
/// the step methods below write or expect these.
#[derive(Debug)]
enum Up {
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

/// The runtime's end.
pub struct RuntimeEnd {
    fd: OwnedFd,
}

/// The container side's end.
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
    // Its length first (a peek into no buffer returns it with MSG_TRUNC),
    // so that the buffer is the packet's size: a fixed 64 KiB one was
    // zeroed, its pages faulted in, for every packet. No packet is empty,
    // so 0 is EOF.
    let len = loop {
        match nix::sys::socket::recv(
            fd.as_raw_fd(),
            &mut [],
            nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_TRUNC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.context("reading the sync socket")?,
        }
    };
    if len == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; len];
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

/// Who is at the other end of the runtime's: named when it goes away.
#[derive(Clone, Copy)]
enum Peer {
    Intermediate,
    Init,
    Exec,
}

impl Peer {
    fn gone(self) -> anyhow::Error {
        match self {
            Peer::Intermediate => anyhow!("container setup process exited unexpectedly"),
            Peer::Init => anyhow!("container init exited during setup"),
            Peer::Exec => anyhow!("exec process exited during setup"),
        }
    }
}

impl RuntimeEnd {
    fn send_continue(&self) -> Result<()> {
        send_packet(self.fd.as_fd(), &[CONTINUE])
    }

    /// The next message; `None` on EOF (the other side is gone). An Error
    /// message is the error it reports.
    fn recv(&self) -> Result<Option<Up>> {
        let Some((buf, fd)) = recv_packet(self.fd.as_fd())? else {
            return Ok(None);
        };
        let payload = &buf[1..];
        Ok(Some(match buf[0] {
            b'm' => Up::MapIds,
            b'h' => Up::Hooks,
            b'r' => Up::Ready,
            b'p' if payload.len() == 5 => Up::Pid(
                i32::from_le_bytes(payload[..4].try_into().expect("4 bytes")),
                payload[4] != 0,
            ),
            b'e' => bail!("{}", String::from_utf8_lossy(payload)),
            b's' => Up::SeccompFd(fd.ok_or_else(|| anyhow!("seccomp message without an fd"))?),
            t => bail!("unexpected sync message tag {t:#x}"),
        }))
    }

    /// The message of step `step` from `peer`, which `want` takes apart.
    fn expect<T>(
        &self,
        peer: Peer,
        step: &str,
        want: impl FnOnce(Up) -> Result<T, Up>,
    ) -> Result<T> {
        match self.recv()? {
            None => Err(peer.gone()),
            Some(m) => want(m).map_err(|m| anyhow!("unexpected sync message {m:?} ({step})")),
        }
    }

    /// Intermediate step: it created a user namespace and asks for its id
    /// maps; answer with `ids_mapped` once they are written.
    pub fn id_maps_requested(&self) -> Result<()> {
        self.expect(Peer::Intermediate, "waiting for MapIds", |m| match m {
            Up::MapIds => Ok(()),
            m => Err(m),
        })
    }

    pub fn ids_mapped(&self) -> Result<()> {
        self.send_continue()
    }

    /// Intermediate's last step: the init's pid, and whether it was born in
    /// the container's cgroup2 directory.
    pub fn init_pid(&self) -> Result<(i32, bool)> {
        self.expect(
            Peer::Intermediate,
            "waiting for the init's pid",
            |m| match m {
                Up::Pid(pid, in_cgroup2) => Ok((pid, in_cgroup2)),
                m => Err(m),
            },
        )
    }

    /// The init is placed (cgroups, oom score): let it set up.
    pub fn init_placed(&self) -> Result<InitSetup<'_>> {
        self.send_continue()?;
        Ok(InitSetup(self))
    }

    /// The exec'd process is placed in the container's cgroup: let it go.
    pub fn exec_placed(&self) -> Result<ExecSetup<'_>> {
        self.send_continue()?;
        Ok(ExecSetup(self))
    }
}

/// The runtime's side of the init's setup, once it was placed.
pub struct InitSetup<'a>(&'a RuntimeEnd);

impl InitSetup<'_> {
    /// The rootfs is mounted: the init asks for the runtime's hooks; answer
    /// with `hooks_run`.
    pub fn hooks_requested(&self) -> Result<()> {
        self.0.expect(Peer::Init, "waiting for Hooks", |m| match m {
            Up::Hooks => Ok(()),
            m => Err(m),
        })
    }

    pub fn hooks_run(&self) -> Result<()> {
        self.0.send_continue()
    }

    /// The notify fd of the seccomp filter the init loaded (it goes on
    /// without an answer).
    pub fn seccomp_fd(&self) -> Result<OwnedFd> {
        self.0
            .expect(Peer::Init, "waiting for the seccomp fd", |m| match m {
                Up::SeccompFd(fd) => Ok(fd),
                m => Err(m),
            })
    }

    /// The init is set up and waits for `start`.
    pub fn ready(self) -> Result<()> {
        self.0.expect(Peer::Init, "waiting for Ready", |m| match m {
            Up::Ready => Ok(()),
            m => Err(m),
        })
    }
}

/// The runtime's side of an exec'd process's setup, once it was placed.
pub struct ExecSetup<'a>(&'a RuntimeEnd);

impl ExecSetup<'_> {
    /// The notify fd of the seccomp filter the process loaded; it waits
    /// for `seccomp_fd_delivered`.
    pub fn seccomp_fd(&self) -> Result<OwnedFd> {
        self.0
            .expect(Peer::Exec, "waiting for the seccomp fd", |m| match m {
                Up::SeccompFd(fd) => Ok(fd),
                m => Err(m),
            })
    }

    pub fn seccomp_fd_delivered(&self) -> Result<()> {
        self.0.send_continue()
    }

    /// The process exec'd: its end, close-on-exec, is gone.
    pub fn execed(self) -> Result<()> {
        match self.0.recv()? {
            None => Ok(()),
            Some(m) => bail!("unexpected sync message {m:?} (waiting for the exec)"),
        }
    }
}

impl ChildEnd {
    fn send(&self, m: &Up) -> Result<()> {
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
    fn wait_continue(&self) -> Result<()> {
        match recv_packet(self.fd.as_fd())? {
            Some((buf, _)) if buf == [CONTINUE] => Ok(()),
            Some((buf, _)) => bail!("unexpected sync message tag {:#x}", buf[0]),
            None => bail!("the runtime went away during setup"),
        }
    }

    /// Setup failed, at whatever step: `msg` says why.
    pub fn fail(&self, msg: &str) -> Result<()> {
        self.send(&Up::Error(msg.to_string()))
    }

    /// (intermediate) A new user namespace exists: wait until the runtime
    /// wrote its id maps.
    pub fn request_id_maps(&self) -> Result<()> {
        self.send(&Up::MapIds)?;
        self.wait_continue()
    }

    /// (intermediate) The init is forked: its pid, and whether it was born
    /// in the container's cgroup2 directory. The intermediate's last word.
    pub fn report_init(self, pid: i32, in_cgroup2: bool) -> Result<()> {
        self.send(&Up::Pid(pid, in_cgroup2))
    }

    /// (init) Wait until the runtime has placed us.
    pub fn init_placed(&self) -> Result<InitSteps<'_>> {
        self.wait_continue()?;
        Ok(InitSteps(self))
    }

    /// (exec) Wait until the runtime has placed us.
    pub fn exec_placed(&self) -> Result<ExecSteps<'_>> {
        self.wait_continue()?;
        Ok(ExecSteps(self))
    }
}

/// The init's steps once placed.
pub struct InitSteps<'a>(&'a ChildEnd);

impl InitSteps<'_> {
    /// Have the runtime run the prestart and createRuntime hooks.
    pub fn run_hooks(&self) -> Result<()> {
        self.0.send(&Up::Hooks)?;
        self.0.wait_continue()
    }

    /// Hand the runtime the notify fd of the filter just loaded.
    pub fn seccomp_fd(&self, fd: OwnedFd) -> Result<()> {
        self.0.send(&Up::SeccompFd(fd))
    }

    /// Setup is done: the runtime will not be waiting any more.
    pub fn ready(self) -> Result<()> {
        self.0.send(&Up::Ready)
    }
}

/// An exec'd process's steps once placed.
pub struct ExecSteps<'a>(&'a ChildEnd);

impl ExecSteps<'_> {
    /// Hand the runtime the notify fd of the filter just loaded, and wait
    /// until it was delivered: no code of the process runs unwatched.
    pub fn seccomp_fd(&self, fd: OwnedFd) -> Result<()> {
        self.0.send(&Up::SeccompFd(fd))?;
        self.0.wait_continue()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text<T>(r: Result<T>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{e:#}"),
        }
    }

    /// Create through an intermediate, every optional step taken, each
    /// side in its own thread as the two processes are.
    #[test]
    fn create_steps_in_order() {
        let (rt, child) = pair().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                child.request_id_maps().unwrap();
                child.report_init(4242, true).unwrap();
            });
            rt.id_maps_requested().unwrap();
            rt.ids_mapped().unwrap();
            assert_eq!(rt.init_pid().unwrap(), (4242, true));
        });
        let (rt, child) = pair().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let steps = child.init_placed().unwrap();
                steps.run_hooks().unwrap();
                let f = std::fs::File::open("/dev/null").unwrap();
                steps.seccomp_fd(f.into()).unwrap();
                steps.ready().unwrap();
            });
            let setup = rt.init_placed().unwrap();
            setup.hooks_requested().unwrap();
            setup.hooks_run().unwrap();
            let fd = setup.seccomp_fd().unwrap();
            let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            assert_eq!(target.unwrap(), std::path::Path::new("/dev/null"));
            setup.ready().unwrap();
        });
    }

    #[test]
    fn exec_steps_end_at_eof() {
        let (rt, child) = pair().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let steps = child.exec_placed().unwrap();
                let f = std::fs::File::open("/dev/null").unwrap();
                steps.seccomp_fd(f.into()).unwrap();
                drop(child);
            });
            let setup = rt.exec_placed().unwrap();
            drop(setup.seccomp_fd().unwrap());
            setup.seccomp_fd_delivered().unwrap();
            setup.execed().unwrap();
        });
    }

    /// The child's error is what the runtime's step returns, whichever
    /// step it is at; a message of another step is refused, naming the
    /// step; EOF names who went away.
    #[test]
    fn errors_at_a_step() {
        let (rt, child) = pair().unwrap();
        child.fail("mounting /proc: EPERM").unwrap();
        assert_eq!(err_text(rt.init_pid()), "mounting /proc: EPERM");

        let (rt, child) = pair().unwrap();
        child.send(&Up::Ready).unwrap();
        let setup = InitSetup(&rt);
        let e = err_text(setup.hooks_requested());
        assert!(
            e.contains("Ready") && e.contains("waiting for Hooks"),
            "{e}"
        );

        let (rt, child) = pair().unwrap();
        child.send(&Up::Hooks).unwrap();
        let e = err_text(ExecSetup(&rt).execed());
        assert!(e.contains("waiting for the exec"), "{e}");

        let (rt, child) = pair().unwrap();
        drop(child);
        assert_eq!(
            err_text(InitSetup(&rt).ready()),
            "container init exited during setup"
        );
        assert_eq!(
            err_text(rt.init_pid()),
            "container setup process exited unexpectedly"
        );
    }

    #[test]
    fn the_runtime_going_away_is_an_error_for_the_child() {
        let (rt, child) = pair().unwrap();
        drop(rt);
        assert!(child.init_placed().is_err());
    }
}
