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
//! runtime before the init's first Continue take its place. The v1
//! hierarchies the init joins itself (init::InitConfig::cgroup_v1).
//!
//! The runtime is single-threaded whenever it forks (see sys::clone_fork).

use crate::kernel::Host;
use crate::namespaces::id_map;
use crate::start::channel::ChildEnd;
use crate::start::init::{self, InitConfig, Namespacing};
use crate::{logging, sys};
use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
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
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    drive(cfg, linux, cgroup, parent)
}

/// The init until setup succeeds: killed (and reaped, if it is our
/// child) when dropped still holding it.
struct KillOnDrop {
    pid: Option<i32>,
    direct: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.pid {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            if self.direct {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(p), None);
            }
        }
    }
}

fn drive(
    cfg: &InitConfig,
    linux: &Linux,
    cgroup: Option<BorrowedFd>,
    parent: &mut dyn Parent,
) -> Result<i32> {
    let (chan, child) = crate::start::channel::pair()?;
    // Declared after the channel, so dropped before it: an init whose
    // setup failed on our side is killed while the channel is still open,
    // instead of seeing it close and printing "the runtime went away"
    // beside the runtime's own error.
    let mut init = KillOnDrop {
        pid: None,
        direct: cfg.ns.direct_clone(),
    };
    let (pid, in_cgroup2) = if cfg.ns.direct_clone() {
        let (flags, later) = cfg.ns.direct_clone_flags();
        let (pid, in_cgroup2) = fork_into(flags, cgroup, "init")?;
        if pid == 0 {
            drop(chan);
            init::run(cfg, child, Namespacing::Direct { unshare: later });
        }
        drop(child);
        init.pid = Some(pid);
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
        let r = (|| {
            if cfg.ns.creates(LinuxNamespaceType::User) {
                chan.id_maps_requested()?;
                write_id_maps(mid, linux)?;
                chan.ids_mapped()?;
            }
            chan.init_pid()
        })();
        let _ = nix::sys::wait::waitpid(Pid::from_raw(mid), None);
        let (pid, in_cgroup2) = r?;
        init.pid = Some(pid);
        (pid, in_cgroup2)
    };
    parent.init_created(pid, in_cgroup2)?;
    let setup = chan.init_placed()?;
    if crate::container::hooks::has_runtime_hooks(cfg.spec) {
        setup.hooks_requested()?;
        parent.run_hooks(pid)?;
        setup.hooks_run()?;
    }
    if cfg.seccomp.is_some_and(|f| f.uses_notify()) {
        parent.seccomp_fd(pid, setup.seccomp_fd()?)?;
    }
    setup.ready()?;
    init.pid = None;
    Ok(pid)
}

/// The intermediate child: join, unshare, fork the init, report its pid.
fn intermediate(cfg: &InitConfig, linux: &Linux, cgroup: Option<BorrowedFd>, chan: ChildEnd) -> ! {
    // Returns what the init's fork needs: its flags and cgroup.
    let r = (|| -> Result<(u64, Option<BorrowedFd>)> {
        // Before joining anything: once in the container's user namespace,
        // its root would pass ptrace checks against a dumpable us and reach
        // our host root, cwd and fds through /proc/PID. The init we fork
        // inherits this. Only a user namespace this process creates itself
        // for an unprivileged runtime waits: its id maps are written by the
        // runtime as that user, which the kernel allows only on a dumpable
        // process's /proc files, and nothing else is in that namespace yet.
        let maps_pending = cfg.who.unprivileged && cfg.ns.creates(LinuxNamespaceType::User);
        if !maps_pending {
            sys::prctl(libc::PR_SET_DUMPABLE, 0).context("prctl(PR_SET_DUMPABLE)")?;
        }
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
        cfg.ns.enter_as_intermediate(&Host, || {
            chan.request_id_maps()?;
            if maps_pending {
                sys::prctl(libc::PR_SET_DUMPABLE, 0).context("prctl(PR_SET_DUMPABLE)")?;
            }
            crate::namespaces::become_userns_root()
        })?;
        // A new pid namespace comes with the init's clone, not from
        // unshare: the kernel stops allocating pids in a namespace made by
        // unshare whose first fork failed, so a refused clone3 could not be
        // followed by a plain clone.
        use LinuxNamespaceType::{Pid, User};
        let pidns = cfg.ns.new_flags(&[]) & crate::namespaces::clone_flag(Pid);
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
        Ok((pidns, cgroup.filter(|_| !userns)))
    })()
    .and_then(|(pidns, cgroup)| fork_into(pidns, cgroup, "init"));
    match r {
        // The init owns the channel from here on.
        Ok((0, _)) => init::run(cfg, chan, Namespacing::FromIntermediate),
        Ok((pid, in_cgroup2)) => {
            let _ = chan.report_init(pid, in_cgroup2);
            std::process::exit(0)
        }
        Err(e) => {
            let _ = chan.fail(&format!("{e:#}"));
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

/// Writes the user namespace's id mappings of process `pid`. Root writes
/// them itself. An unprivileged user may write only a single mapping of
/// its own id (and, for gid_map, only after denying setgroups, which could
/// otherwise drop a group that denies access); anything more is written by
/// the setuid helpers newuidmap/newgidmap, which allow the ranges
/// /etc/subuid and /etc/subgid give the user.
fn write_id_maps(pid: i32, linux: &Linux) -> Result<()> {
    let root = nix::unistd::geteuid().is_root();
    for (kind, maps, own) in [
        (
            IdKind::Uid,
            linux.uid_mappings(),
            nix::unistd::geteuid().as_raw(),
        ),
        (
            IdKind::Gid,
            linux.gid_mappings(),
            nix::unistd::getegid().as_raw(),
        ),
    ] {
        let maps = maps.as_deref().unwrap_or(&[]);
        let field = kind.field();
        if root {
            write_map(pid, kind, maps)?;
        } else if maps.is_empty() {
            bail!("linux.{field}: a user namespace created without root needs a mapping");
        } else if let [m] = maps {
            if m.host_id() == own && m.size() == 1 {
                if kind == IdKind::Gid {
                    std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                        .map_err(|e| anyhow!("writing /proc/{pid}/setgroups: {e}"))?;
                }
                write_map(pid, kind, maps)?;
            } else {
                map_with_helper(pid, kind, maps)?;
            }
        } else {
            map_with_helper(pid, kind, maps)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IdKind {
    Uid,
    Gid,
}

impl IdKind {
    fn field(self) -> &'static str {
        match self {
            IdKind::Uid => "uidMappings",
            IdKind::Gid => "gidMappings",
        }
    }
    fn file(self) -> &'static str {
        match self {
            IdKind::Uid => "uid_map",
            IdKind::Gid => "gid_map",
        }
    }
    fn helper(self) -> &'static str {
        match self {
            IdKind::Uid => "newuidmap",
            IdKind::Gid => "newgidmap",
        }
    }
}

fn write_map(pid: i32, kind: IdKind, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let file = kind.file();
    std::fs::write(format!("/proc/{pid}/{file}"), id_map(maps))
        .map_err(|e| anyhow!("linux.{}: writing /proc/{pid}/{file}: {e}", kind.field()))
}

/// `newuidmap PID ID HOST-ID COUNT...` (or newgidmap), found in PATH.
fn map_with_helper(
    pid: i32,
    kind: IdKind,
    maps: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<()> {
    let triples: Vec<(u32, u32, u32)> = maps
        .iter()
        .map(|m| (m.container_id(), m.host_id(), m.size()))
        .collect();
    crate::image::rootless::run_id_helper(kind.helper(), pid, &triples).with_context(|| {
        format!(
            "linux.{}: mapping more than this user's own id (are the ranges in /etc/sub{}id?)",
            kind.field(),
            &kind.file()[..3],
        )
    })
}
