//! Creating the container's init process (parent side) and the optional
//! intermediate process.
//!
//! Fast path: one clone(2) with every new namespace flag; the child is the
//! init (pid 1 of its pid namespace). When namespaces must be joined before
//! others are created (a user, pid or time namespace given by path, or a new
//! user namespace together with joined ones), or a time namespace is
//! created, an intermediate child joins/unshares and forks the init, reports
//! its pid and exits.
//!
//! The runtime is single-threaded whenever it forks (see sys::clone_fork).

use crate::channel::{Channel, Msg};
use crate::init::{self, InitConfig};
use crate::namespaces::id_map;
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{Linux, LinuxNamespaceType};
use std::io::Write;

/// What the parent does at the two points where the init waits for it.
pub trait Parent {
    /// The init exists (not yet running container code): place it in its
    /// cgroup, set its oom score.
    fn init_created(&mut self, pid: i32) -> Result<()>;
    /// The rootfs is mounted: run prestart and createRuntime hooks.
    fn run_hooks(&mut self, pid: i32) -> Result<()>;
    /// The init loaded a seccomp filter with notify rules: hand the fd on.
    fn seccomp_fd(&mut self, pid: i32, fd: std::os::fd::OwnedFd) -> Result<()>;
}

/// Spawn the init and drive it through setup until it reports `Ready`.
/// Returns its pid (as seen from the runtime's pid namespace). On error the
/// init is killed and nothing of it remains.
pub fn spawn(cfg: &InitConfig, linux: &Linux, parent: &mut dyn Parent) -> Result<i32> {
    let (chan, child) = crate::channel::pair()?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let direct = cfg.ns.direct_clone();
    let mut pid = None;
    let r = drive(cfg, linux, parent, chan, child, direct, &mut pid);
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
    parent: &mut dyn Parent,
    chan: Channel,
    child: Channel,
    direct: bool,
    pid_out: &mut Option<i32>,
) -> Result<i32> {
    let pid = if direct {
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
        let pid = sys::clone_fork(flags).context("clone")?;
        if pid == 0 {
            drop(chan);
            init::run(cfg, &child, true, later);
        }
        drop(child);
        *pid_out = Some(pid);
        if cfg.ns.creates(LinuxNamespaceType::User) {
            write_id_maps(pid, linux)?;
        }
        pid
    } else {
        let mid = sys::clone_fork(0).context("fork")?;
        if mid == 0 {
            drop(chan);
            intermediate(cfg, linux, child);
        }
        drop(child);
        let r = (|| loop {
            match chan.recv()? {
                Some(Msg::MapIds) => {
                    write_id_maps(mid, linux)?;
                    chan.send(&Msg::Continue)?;
                }
                Some(Msg::Pid(p)) => return Ok(p),
                Some(Msg::Error(e)) => bail!("{e}"),
                Some(m) => bail!("unexpected sync message {m:?}"),
                None => bail!("container setup process exited unexpectedly"),
            }
        })();
        let _ = nix::sys::wait::waitpid(Pid::from_raw(mid), None);
        let pid = r?;
        *pid_out = Some(pid);
        pid
    };
    parent.init_created(pid)?;
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
fn intermediate(cfg: &InitConfig, linux: &Linux, chan: Channel) -> ! {
    let r = (|| -> Result<i32> {
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
        let flags = cfg
            .ns
            .new_flags(&[LinuxNamespaceType::User, LinuxNamespaceType::Cgroup]);
        nix::sched::unshare(CloneFlags::from_bits_retain(flags as i32))
            .context("creating namespaces")?;
        if cfg.ns.creates(LinuxNamespaceType::Time) {
            let offsets: String = linux
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
                .collect();
            if !offsets.is_empty() {
                std::fs::write("/proc/self/timens_offsets", offsets)
                    .context("linux.timeOffsets: writing /proc/self/timens_offsets")?;
            }
        }
        let pid = sys::clone_fork(0).context("fork")?;
        if pid == 0 {
            init::run(cfg, &chan, false, 0);
        }
        Ok(pid)
    })();
    match r {
        Ok(pid) => {
            let _ = chan.send(&Msg::Pid(pid));
            std::process::exit(0)
        }
        Err(e) => {
            let _ = chan.send(&Msg::Error(format!("{e:#}")));
            std::process::exit(1)
        }
    }
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
