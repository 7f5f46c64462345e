//! `exec`: run another process in a running container.
//!
//! The runtime joins the container's pid (and time) namespace itself —
//! setns on those only changes where its *children* go — and forks once
//! (an unprivileged runtime joins the container's user namespace first,
//! without which it may not join the others).
//! The child joins every other namespace (user first; entering the mount
//! namespace puts it at the container's pivoted root), takes the container's
//! seccomp profile and the process's own settings, and execs. The exec'd
//! process is the runtime's direct child, so its exit status is ours.

use crate::cgroups::Manager;
use crate::container::foreground;
use crate::container::state::{LifecycleError, State, Status};
use crate::container::Runtime;
use crate::kernel::{Host, Kernel};
use crate::namespaces::JOIN_ORDER;
use crate::process::seccomp;
use crate::start::channel::{ChildEnd, RuntimeEnd};
use crate::start::init::{exec_process, find_executable, ProcessTarget};
use crate::sys;
use crate::terminal;
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Linux, LinuxNamespaceType, Process, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

pub struct ExecOpts {
    pub id: String,
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
}

/// Run the process in the container whose saved config.json is `spec`
/// (`Runtime::saved_spec`); returns its exit status (0 when detached).
/// Phases: check, open and join the container's namespaces (pid and time
/// here), fork, drive the child until it execs, then wait for it unless
/// detached.
pub fn run(rt: &Runtime, o: &ExecOpts, spec: &Spec) -> Result<i32> {
    let (st, status) = load(rt, o)?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow!("saved config.json has no linux section"))?;
    let p = &o.process;
    check_process(p)?;
    let (filter, caps) = crate::container::prepare_process(p, linux)?;
    let ns = open_namespaces(&st, linux)?;
    let user = UserNs::for_this_runtime();
    join_here(&Host, &ns, user)?;
    let terminal = p.terminal().unwrap_or(false);
    let (ours, console) = console(o, terminal)?;
    let mut sfd = if o.detach {
        None
    } else {
        Some(foreground::block_signals()?)
    };
    let cg = crate::container::cgroup_of(&st)?;
    let cgroup_dir = cg
        .as_ref()
        .map(|c| c.unified_dir_fd())
        .transpose()?
        .flatten();
    let v1_join = cg.as_ref().map(|c| c.v1_self_join()).transpose()?.flatten();
    let (chan, child) = crate::start::channel::pair()?;
    let (pid, in_cgroup2) =
        crate::start::spawn::fork_into(0, cgroup_dir.as_ref().map(|d| d.as_fd()), "exec process")?;
    if pid == 0 {
        drop(chan);
        let target = ProcessTarget {
            process: p,
            linux,
            filter: filter.as_ref(),
            caps: &caps,
            preserve_fds: o.preserve_fds,
        };
        run_child(
            &target,
            &ns,
            user,
            console.as_ref(),
            v1_join.as_ref(),
            &child,
        );
    }
    drop(child);
    drop(console);
    let v1_joined = v1_join.is_some();
    drop(v1_join);
    let container = Container {
        st: &st,
        status,
        linux,
    };
    if let Err(e) = drive(
        &chan,
        pid,
        in_cgroup2,
        v1_joined,
        cg.as_ref(),
        &container,
        filter.as_ref(),
    ) {
        // Closing our end makes a child still waiting for Continue exit.
        drop(chan);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(e);
    }
    if let Some(pf) = &o.pid_file {
        crate::container::state::write_atomic(pf, pid.to_string().as_bytes())
            .with_context(|| format!("--pid-file {}", pf.display()))?;
    }
    match sfd.as_mut() {
        None => Ok(0),
        Some(sfd) => {
            let master = ours.map(|s| terminal::recv_fd(s.as_fd())).transpose()?;
            foreground::attach(pid, sfd, master.as_ref())
        }
    }
}

/// The container, if exec may run a process in it.
fn load(rt: &Runtime, o: &ExecOpts) -> Result<(State, Status)> {
    let (st, status) = rt.load(&o.id)?;
    match status {
        Status::Stopped => Err(not_running(&o.id)),
        Status::Paused if !o.ignore_paused => bail!(
            "cannot exec in container {:?}: it is paused (use --ignore-paused)",
            o.id
        ),
        _ => Ok((st, status)),
    }
}

/// The checks `Bundle::load` makes of a config's process, for the one
/// exec was given.
fn check_process(p: &Process) -> Result<()> {
    match p.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => bail!("process.args: must contain at least one element"),
    }
    if !p.cwd().is_absolute() {
        bail!("process.cwd: {:?} is not an absolute path", p.cwd());
    }
    Ok(())
}

/// Every namespace type the container was configured with, found through
/// its init (a path-joined one is reachable the same way), in JOIN_ORDER.
fn open_namespaces(st: &State, linux: &Linux) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let configured: Vec<LinuxNamespaceType> = linux
        .namespaces()
        .iter()
        .flatten()
        .map(|n| n.typ())
        .collect();
    let mut ns = Vec::new();
    for (t, name) in JOIN_ORDER.iter().filter(|(t, _)| configured.contains(t)) {
        let path = format!("/proc/{}/ns/{name}", st.pid);
        let fd = crate::sys::open(
            path.as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| anyhow!("container {:?}: opening {path}: {}", st.id, e.desc()))?;
        ns.push((*t, fd));
    }
    // The container's init must still be the same process: its pid could
    // have been recycled between load and open.
    if !crate::container::state::process_alive(st.pid, st.init_start_time) {
        return Err(not_running(&st.id));
    }
    Ok(ns)
}

/// Who joins the container's user namespace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum UserNs {
    /// the runtime, before it forks (an unprivileged runtime: see join_here)
    Runtime,
    /// the child, first of the namespaces it joins
    Child,
}

impl UserNs {
    /// setns into a pid or time namespace needs CAP_SYS_ADMIN in our own
    /// user namespace too: an unprivileged runtime has it only once it is
    /// in the container's (which it owns). Only then does the runtime join
    /// that one itself; it can do no more there than the user could before
    /// (the container's ids are the user's own or its subordinate ids).
    fn for_this_runtime() -> UserNs {
        if nix::unistd::geteuid().is_root() {
            UserNs::Child
        } else {
            UserNs::Runtime
        }
    }
}

/// Joins the namespaces the runtime itself must be in for its child to
/// be: pid and time, and the user namespace first if `user` says so.
fn join_here(k: &dyn Kernel, ns: &[(LinuxNamespaceType, OwnedFd)], user: UserNs) -> Result<()> {
    for (t, fd) in ns {
        let here = match t {
            LinuxNamespaceType::User => user == UserNs::Runtime,
            LinuxNamespaceType::Pid | LinuxNamespaceType::Time => true,
            _ => false,
        };
        if here {
            k.setns(fd.as_fd(), *t)
                .with_context(|| format!("joining the container's {t} namespace"))?;
        }
    }
    Ok(())
}

/// The child's part: every other namespace in JOIN_ORDER (user first,
/// mount last), becoming root of the user namespace right after it.
fn join_in_child(k: &dyn Kernel, ns: &[(LinuxNamespaceType, OwnedFd)], user: UserNs) -> Result<()> {
    for (t, fd) in ns
        .iter()
        .filter(|(t, _)| !matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time))
    {
        if !(user == UserNs::Runtime && *t == LinuxNamespaceType::User) {
            k.setns(fd.as_fd(), *t)
                .with_context(|| format!("joining the container's {t} namespace"))?;
        }
        if *t == LinuxNamespaceType::User {
            k.become_userns_root()?;
        }
    }
    Ok(())
}

/// The foreground terminal's socket pair (ours: where the pty master
/// arrives) and the console socket the child sends the master to.
fn console(o: &ExecOpts, terminal: bool) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    let (ours, theirs) =
        foreground::console_pair(terminal && o.console_socket.is_none() && !o.detach)?;
    let console = match (terminal, theirs, &o.console_socket) {
        (true, Some(c), _) => Some(c),
        (true, None, Some(path)) => Some(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("--console-socket {}", path.display()))?,
        )),
        (true, None, None) => {
            bail!("process.terminal is true: --console-socket is required with --detach")
        }
        (false, _, _) => None,
    };
    Ok((ours, console))
}

/// The container an exec'd process joins, for the seccomp agent.
struct Container<'a> {
    st: &'a State,
    status: Status,
    linux: &'a Linux,
}

/// The runtime's side of the handshake: place the child in the cgroup
/// (but the v1 hierarchies it joins itself, `v1_joined`),
/// let it go, hand on the notify fd of its seccomp `filter` (if that has
/// notify rules); done when it execs (the channel is close-on-exec: EOF).
fn drive(
    chan: &RuntimeEnd,
    pid: i32,
    in_cgroup2: bool,
    v1_joined: bool,
    cg: Option<&Manager>,
    c: &Container,
    filter: Option<&seccomp::Filter>,
) -> Result<()> {
    if let Some(cg) = cg {
        cg.add_pid(pid, in_cgroup2, v1_joined)?;
    }
    let setup = chan.exec_placed()?;
    if filter.is_some_and(|f| f.uses_notify()) {
        let fd = setup.seccomp_fd()?;
        // The container process state of an exec'd process: its own pid,
        // the container's state (status, init pid).
        let container = crate::container::hook_state_json(c.st, c.st.pid, &c.status.to_string());
        crate::container::send_seccomp_fd(c.linux, &container, pid, &fd)?;
        setup.seccomp_fd_delivered()?;
    }
    setup.execed()
}

/// The forked child: join its v1 cgroups, set up and exec, or tell the
/// runtime why not.
fn run_child(
    target: &ProcessTarget,
    ns: &[(LinuxNamespaceType, OwnedFd)],
    user: UserNs,
    console: Option<&OwnedFd>,
    v1_join: Option<&crate::cgroups::SelfJoin>,
    chan: &ChildEnd,
) -> ! {
    let e = match child_setup(target, ns, user, console, v1_join, chan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = chan.fail(&format!("{e:#}"));
    std::process::exit(127)
}

fn child_setup(
    target: &ProcessTarget,
    ns: &[(LinuxNamespaceType, OwnedFd)],
    user: UserNs,
    console: Option<&OwnedFd>,
    v1_join: Option<&crate::cgroups::SelfJoin>,
    chan: &ChildEnd,
) -> Result<std::convert::Infallible> {
    let p = target.process;
    sys::prctl(libc::PR_SET_DUMPABLE, 0).context("prctl(PR_SET_DUMPABLE)")?;
    if let Some(j) = v1_join {
        j.join()?;
    }
    let steps = chan.exec_placed()?;
    // The container's user namespace may deny setgroups: drop the
    // runtime's groups while still outside (exec_process checks).
    crate::process::attrs::drop_groups();
    join_in_child(&Host, ns, user)?;
    if let Some(sock) = console {
        let root = crate::sys::open(
            "/",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context("opening /")?;
        let slave = terminal::open_pty(&root, p.console_size().as_ref(), sock)?;
        terminal::become_controlling(slave)?;
    }
    let env: &[String] = p.env().as_deref().unwrap_or(&[]);
    let exe = find_executable(&p.args().as_ref().expect("validated")[0], env, p.cwd())?;
    exec_process(target, &exe, Some(&steps), chan.as_fd())
}

fn not_running(id: &str) -> anyhow::Error {
    LifecycleError::NotRunning {
        id: id.into(),
        action: "exec in",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Call, Recorder};
    use LinuxNamespaceType::{Ipc, Mount, Network, Pid, User};

    /// As open_namespaces leaves them: JOIN_ORDER (any fd will do for the
    /// recorder).
    fn ns(types: &[LinuxNamespaceType]) -> Vec<(LinuxNamespaceType, OwnedFd)> {
        types
            .iter()
            .map(|t| (*t, std::fs::File::open("/dev/null").unwrap().into()))
            .collect()
    }

    /// Root: the runtime joins pid (and time) only; the child joins user
    /// first, becomes its root, and the mount namespace last.
    #[test]
    fn who_joins_what_with_root() {
        let ns = ns(&[User, Ipc, Network, Mount, Pid]);
        let (runtime, child) = (Recorder::default(), Recorder::default());
        join_here(&runtime, &ns, UserNs::Child).unwrap();
        join_in_child(&child, &ns, UserNs::Child).unwrap();
        assert_eq!(runtime.calls(), [Call::Setns(Pid)]);
        assert_eq!(
            child.calls(),
            [
                Call::Setns(User),
                Call::BecomeRoot,
                Call::Setns(Ipc),
                Call::Setns(Network),
                Call::Setns(Mount),
            ]
        );
    }

    /// Without root the runtime joins the user namespace itself, first;
    /// the child does not join it again but still becomes its root.
    #[test]
    fn who_joins_what_without_root() {
        let ns = ns(&[User, Mount, Pid]);
        let (runtime, child) = (Recorder::default(), Recorder::default());
        join_here(&runtime, &ns, UserNs::Runtime).unwrap();
        join_in_child(&child, &ns, UserNs::Runtime).unwrap();
        assert_eq!(runtime.calls(), [Call::Setns(User), Call::Setns(Pid)]);
        assert_eq!(child.calls(), [Call::BecomeRoot, Call::Setns(Mount)]);
    }
}
