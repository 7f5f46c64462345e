//! `run` without --detach: create, start, then stay as the container's
//! parent: forward signals to it, relay a terminal if it has one, and when
//! it exits, delete it and report its exit status (128+N for signal N).

use crate::container::{load_bundle, CreateOpts, IfRunning, Runtime};
use crate::{sys, terminal};
use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

const FORWARDED: [Signal; 13] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGWINCH,
];

pub fn run(rt: &Runtime, o: &CreateOpts, detach: bool) -> Result<i32> {
    if detach {
        let bundle = load_bundle(o)?;
        crate::process::selfexe::ensure_read_only_exe_for_run(&bundle.spec)?;
        rt.create_from(o, &bundle, None)?;
        return start_or_delete(rt, &o.id, &bundle.spec).map(|_| 0);
    }
    // Orphans of the container (when it has no pid namespace of its own)
    // and the init itself (when an intermediate process forked it) are
    // re-parented to us, so we can wait for them.
    sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    let mut sfd = block_signals()?;
    // The console socket must exist before create: read the config first.
    let bundle = load_bundle(o)?;
    crate::process::selfexe::ensure_read_only_exe_for_run(&bundle.spec)?;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal());
    let (ours, theirs) = console_pair(o.console_socket.is_none() && terminal.unwrap_or(false))?;
    let st = rt.create_from(o, &bundle, theirs)?;
    let master = ours.map(|s| terminal::recv_fd(s.as_fd())).transpose()?;
    start_or_delete(rt, &o.id, &bundle.spec)?;
    let code = attach(st.pid, &mut sfd, master.as_ref());
    let del = rt.delete_with(&o.id, IfRunning::Kill, Some(&bundle.spec));
    let code = code?;
    del?;
    Ok(code)
}

/// Block the signals we forward (and SIGCHLD) and read them from a
/// signalfd. Called before forking so no signal is lost; the container's
/// process unblocks everything before exec.
pub fn block_signals() -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
    Ok(SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)?)
}

/// When we relay the terminal ourselves: a socketpair standing in for the
/// console socket (ours, the process's end).
pub fn console_pair(wanted: bool) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !wanted {
        return Ok((None, None));
    }
    let (a, b) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Some(a), Some(b)))
}

/// Stay attached to `pid` until it exits: forward signals, relay the
/// terminal (raw mode, window size) when there is one. Returns its exit
/// status, 128+N when killed by signal N.
pub fn attach(pid: i32, sfd: &mut SignalFd, master: Option<&OwnedFd>) -> Result<i32> {
    let raw = master.and_then(|_| RawMode::enter());
    if let (Some(m), Some((rows, cols))) = (master, sys::get_winsize(std::io::stdin().as_fd())) {
        let _ = sys::set_winsize(m.as_fd(), rows, cols);
    }
    let code = wait_loop(pid, sfd, master);
    drop(raw);
    code
}

/// `start`, or `delete` if it fails; `spec` is the config create used.
fn start_or_delete(rt: &Runtime, id: &str, spec: &Spec) -> Result<()> {
    rt.start_with(id, Some(spec)).inspect_err(|_| {
        let _ = rt.delete_with(id, IfRunning::Kill, Some(spec));
    })
}

fn wait_loop(init: i32, sfd: &mut SignalFd, master: Option<&OwnedFd>) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdin = std::io::stdin();
    let mut stdin_open = master.is_some();
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r?,
        };
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if let Some(m) = master {
            if ready[1] {
                match nix::unistd::read(m.as_raw_fd(), &mut buf) {
                    Ok(n) if n > 0 => write_all(1, &buf[..n]),
                    // EIO: every slave fd is closed; the exit is coming via SIGCHLD.
                    _ => {}
                }
            }
            if stdin_open && ready.get(2) == Some(&true) {
                match nix::unistd::read(0, &mut buf) {
                    Ok(n) if n > 0 => write_all(m.as_raw_fd(), &buf[..n]),
                    _ => stdin_open = false,
                }
            }
        }
        if !ready[0] {
            continue;
        }
        let Some(info) = sfd.read_signal()? else {
            continue;
        };
        let sig = info.ssi_signo as i32;
        if sig == libc::SIGCHLD {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => {
                        return Ok(drain(master, c))
                    }
                    Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => {
                        return Ok(drain(master, 128 + s as i32))
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        } else if sig == libc::SIGWINCH && master.is_some() {
            if let (Some(m), Some((r, c))) = (master, sys::get_winsize(stdin.as_fd())) {
                let _ = sys::set_winsize(m.as_fd(), r, c);
            }
        } else {
            let _ = sys::kill(init, sig);
        }
    }
}

/// Copy what the container wrote to its terminal before it exited.
fn drain(master: Option<&OwnedFd>, code: i32) -> i32 {
    if let Some(m) = master {
        let _ = nix::fcntl::fcntl(
            m.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut buf = [0u8; 8192];
        while let Ok(n) = nix::unistd::read(m.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            write_all(1, &buf[..n]);
        }
    }
    code
}

fn write_all(fd: i32, mut data: &[u8]) {
    // SAFETY: fd is a valid open descriptor for the duration of the call.
    let f = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    while !data.is_empty() {
        match nix::unistd::write(f, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// The user's terminal in raw mode for the container's lifetime.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw)
            .ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin().as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}
