//! Creating the container's init process (parent side) and the optional
//! intermediate process.
//!
//! Fast path: one clone with every new namespace flag; the child is the
//! init (pid 1 of its pid namespace). When namespaces must be joined before
//! others are created (a user, pid or time namespace given by path, or a new
//! user namespace together with joined ones), or a time namespace is
//! created, an intermediate child joins/unshares and forks the init, reports
//! its pid and exits.
//!
//! Whoever forks the init does it with clone3(CLONE_INTO_CGROUP) when the
//! container has a cgroup2 directory, so the init is born in it; the
//! intermediate itself is forked outside (it would count against the
//! container's pids.max and be charged to its memory). Where the kernel
//! refuses clone3 (old kernels, seccomp, or the intermediate's credentials
//! in a user namespace), a plain clone and a cgroup.procs write by the
//! runtime before the init's first Continue take its place.
//!
//! The runtime is single-threaded whenever it forks (see sys::clone_fork).

use crate::namespaces::id_map;
use crate::start::channel::{Channel, Msg};
use crate::start::init::{self, InitConfig};
use crate::{logging, sys};
use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{Linux, LinuxNamespaceType};
use std::io::Write;
use std::os::fd::BorrowedFd;

/// What the parent does at the two points where the init waits for it.
pub trait Parent {
    /// The init exists (not yet running container code): place it in its
    /// cgroups (`in_cgroup2`: it was born in the cgroup2 one), set its oom
    /// score.
    fn init_created(&mut self, pid: i32, in_cgroup2: bool) -> Result<()>;
    /// The rootfs is mounted: run prestart and createRuntime hooks.
    fn run_hooks(&mut self, pid: i32) -> Result<()>;
    /// The init loaded a seccomp filter with notify rules: hand the fd on.
    fn seccomp_fd(&mut self, pid: i32, fd: std::os::fd::OwnedFd) -> Result<()>;
}

/// Fork a child with namespace `flags` (0 in the child), born in the
/// cgroup2 directory `cgroup` if the kernel lets us: returns whether it
/// was. If not, the caller must add it to cgroup.procs before it runs
/// container code. `what` names the child in the debug log.
pub fn fork_into(flags: u64, cgroup: Option<BorrowedFd>, what: &str) -> Result<(i32, bool)> {
    if let Some(dir) = cgroup {
        match sys::clone_into_cgroup(flags, dir) {
            Ok(pid) => {
                if pid != 0 {
                    logging::debug(&format!(
                        "{what} {pid} cloned into its cgroup (clone3 CLONE_INTO_CGROUP)"
                    ));
                }
                return Ok((pid, true));
            }
            // the cgroup's pids.max: a fork outside and a move would dodge it
            Err(Errno::EAGAIN) => {
                bail!("clone3 into the container's cgroup: {} (its pids.max reached?)", Errno::EAGAIN)
            }
            Err(e) => logging::debug(&format!(
                "clone3 CLONE_INTO_CGROUP refused ({e}): {what} cloned outside, then moved into its cgroup"
            )),
        }
    }
    Ok((sys::clone_fork(flags).context("clone")?, false))
}

/// Spawn the init and drive it through setup until it reports `Ready`.
/// `cgroup`: the container's cgroup2 directory, if it has one.
/// Returns its pid (as seen from the runtime's pid namespace). On error the
/// init is killed and nothing of it remains.
pub fn spawn(
    cfg: &InitConfig,
    linux: &Linux,
    cgroup: Option<BorrowedFd>,
    parent: &mut dyn Parent,
) -> Result<i32> {
    let (chan, child) = crate::start::channel::pair()?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let direct = cfg.ns.direct_clone();
    let mut pid = None;
    let r = drive(cfg, linux, cgroup, parent, chan, child, &mut pid);
    if let (Err(_), Some(p)) = (&r, pid) {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        if direct {
            let _ = nix::sys::wait::waitpid(Pid::from_raw(p), None);
        }
    }
    r
}

fn drive(
    cfg: &InitConfig,
    linux: &Linux,
    cgroup: Option<BorrowedFd>,
    parent: &mut dyn Parent,
    chan: Channel,
    child: Channel,
    pid_out: &mut Option<i32>,
) -> Result<i32> {
    let (pid, in_cgroup2) = if cfg.ns.direct_clone() {
        // CLONE_NEWCGROUP is left to the init: the namespace must be created
        // after the init was moved into its cgroup, so that it is the root.
        // With a new user namespace only it and the pid namespace come with
        // the clone; the init unshares the rest once it is root in the user
        // namespace, so their objects (the mqueue root, …) belong to that root.
        use LinuxNamespaceType::{Cgroup, Pid, User};
        let (flags, later) = if cfg.ns.creates(User) {
            (
                cfg.ns.new_flags(&[])
                    & (crate::namespaces::clone_flag(User) | crate::namespaces::clone_flag(Pid)),
                cfg.ns.new_flags(&[User, Pid, Cgroup]),
            )
        } else {
            (cfg.ns.new_flags(&[Cgroup]), 0)
        };
        let (pid, in_cgroup2) = fork_into(flags, cgroup, "init")?;
        if pid == 0 {
            drop(chan);
            init::run(cfg, &child, true, later);
        }
        drop(child);
        *pid_out = Some(pid);
        if cfg.ns.creates(LinuxNamespaceType::User) {
            write_id_maps(pid, linux)?;
        }
        (pid, in_cgroup2)
    } else {
        let mid = sys::clone_fork(0).context("fork")?;
        if mid == 0 {
            drop(chan);
            intermediate(cfg, linux, cgroup, child);
        }
        drop(child);
        let r = (|| loop {
            match chan.recv()? {
                Some(Msg::MapIds) => {
                    write_id_maps(mid, linux)?;
                    chan.send(&Msg::Continue)?;
                }
                Some(Msg::Pid(p, in_cgroup2)) => return Ok((p, in_cgroup2)),
                Some(Msg::Error(e)) => bail!("{e}"),
                Some(m) => bail!("unexpected sync message {m:?}"),
                None => bail!("container setup process exited unexpectedly"),
            }
        })();
        let _ = nix::sys::wait::waitpid(Pid::from_raw(mid), None);
        let (pid, in_cgroup2) = r?;
        *pid_out = Some(pid);
        (pid, in_cgroup2)
    };
    parent.init_created(pid, in_cgroup2)?;
    chan.send(&Msg::Continue)?;
    loop {
        match chan.recv()? {
            Some(Msg::Hooks) => {
                parent.run_hooks(pid)?;
                chan.send(&Msg::Continue)?;
            }
            Some(Msg::SeccompFd(fd)) => parent.seccomp_fd(pid, fd)?,
            Some(Msg::Ready) => return Ok(pid),
            Some(Msg::Error(e)) => bail!("{e}"),
            Some(m) => bail!("unexpected sync message {m:?}"),
            None => bail!("container init exited during setup"),
        }
    }
}

/// The intermediate child: join, unshare, fork the init, report its pid.
fn intermediate(cfg: &InitConfig, linux: &Linux, cgroup: Option<BorrowedFd>, chan: Channel) -> ! {
    let r = (|| -> Result<(i32, bool)> {
        // Before joining anything: once in the container's user namespace,
        // its root would pass ptrace checks against a dumpable us and reach
        // our host root, cwd and fds through /proc/PID. The init we fork
        // inherits this.
        sys::prctl(libc::PR_SET_DUMPABLE, 0).context("prctl(PR_SET_DUMPABLE)")?;
        // Opened now, in the host's /proc: after joining a mount namespace
        // by path, /proc/self is whatever that namespace put there.
        let offsets = time_offsets(linux);
        let offsets_file = if cfg.ns.creates(LinuxNamespaceType::Time) && !offsets.is_empty() {
            Some(
                sys::open(
                    "/proc/self/timens_offsets",
                    nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .context("linux.timeOffsets: opening /proc/self/timens_offsets")?,
            )
        } else {
            None
        };
        // A joined user namespace may deny setgroups: the runtime's groups
        // must be gone before entering it (the init checks in the end).
        crate::process::attrs::drop_groups();
        cfg.ns.enter(|t| t == LinuxNamespaceType::User)?;
        if cfg.ns.creates(LinuxNamespaceType::User) {
            nix::sched::unshare(CloneFlags::CLONE_NEWUSER)
                .context("creating the user namespace")?;
            chan.send(&Msg::MapIds)?;
            chan.wait_continue()?;
            nix::unistd::setresgid(0.into(), 0.into(), 0.into())
                .context("setresgid(0) in the user namespace")?;
            nix::unistd::setresuid(0.into(), 0.into(), 0.into())
                .context("setresuid(0) in the user namespace")?;
        }
        cfg.ns.enter(|t| t != LinuxNamespaceType::User)?;
        // A new pid namespace comes with the init's clone, not from
        // unshare: the kernel stops allocating pids in a namespace made by
        // unshare whose first fork failed, so a refused clone3 could not be
        // followed by a plain clone.
        use LinuxNamespaceType::{Cgroup, Pid, User};
        let pidns = cfg.ns.new_flags(&[]) & crate::namespaces::clone_flag(Pid);
        nix::sched::unshare(CloneFlags::from_bits_retain(
            cfg.ns.new_flags(&[User, Cgroup, Pid]) as i32,
        ))
        .context("creating namespaces")?;
        if let Some(f) = offsets_file {
            // One write: the kernel takes the offsets of one write(2) only.
            std::fs::File::from(f)
                .write_all(offsets.as_bytes())
                .context("linux.timeOffsets: writing /proc/self/timens_offsets")?;
        }
        // In a user namespace the kernel checks our credentials, now the
        // container root's, against the host's cgroup.procs and refuses
        // clone3 (after copying the whole process): do not try.
        let userns = cfg.ns.creates(User) || cfg.ns.joins(User);
        if userns && cgroup.is_some() {
            logging::debug("in a user namespace: init cloned outside, then moved into its cgroup");
        }
        let (pid, in_cgroup2) = fork_into(pidns, cgroup.filter(|_| !userns), "init")?;
        if pid == 0 {
            init::run(cfg, &chan, false, 0);
        }
        Ok((pid, in_cgroup2))
    })();
    match r {
        Ok((pid, in_cgroup2)) => {
            let _ = chan.send(&Msg::Pid(pid, in_cgroup2));
            std::process::exit(0)
        }
        Err(e) => {
            let _ = chan.send(&Msg::Error(format!("{e:#}")));
            std::process::exit(1)
        }
    }
}

/// linux.timeOffsets in /proc/PID/timens_offsets format.
fn time_offsets(linux: &Linux) -> String {
    linux
        .time_offsets()
        .iter()
        .flatten()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect()
}

fn write_id_maps(pid: i32, linux: &Linux) -> Result<()> {
    for (file, maps) in [
        ("uid_map", linux.uid_mappings()),
        ("gid_map", linux.gid_mappings()),
    ] {
        let text = id_map(maps.as_deref().unwrap_or(&[]));
        std::fs::write(format!("/proc/{pid}/{file}"), &text).map_err(|e| {
            anyhow!(
                "linux.{}: writing /proc/{pid}/{file}: {e}",
                if file == "uid_map" {
                    "uidMappings"
                } else {
                    "gidMappings"
                }
            )
        })?;
    }
    Ok(())
}
