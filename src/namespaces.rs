//! Which namespaces a container creates and which it joins.
//!
//! Namespace paths are opened by the parent before anything is spawned, so
//! a wrong path fails `create` with the field name and nothing to undo.
//! Joining always happens before creating (a namespace created after
//! joining a user namespace is owned by that user namespace, as the spec
//! requires), and the user namespace is joined first.

use crate::kernel::Kernel;
use anyhow::{anyhow, bail, Context, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxNamespaceType};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

pub struct Namespaces {
    pub new: Vec<LinuxNamespaceType>,
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
}

/// Namespace types with their /proc/PID/ns names, in the order a process
/// joins them: user first (it decides what the others allow), mount last
/// among those a child joins, then pid and time (which only affect
/// children).
pub const JOIN_ORDER: [(LinuxNamespaceType, &str); 8] = [
    (LinuxNamespaceType::User, "user"),
    (LinuxNamespaceType::Ipc, "ipc"),
    (LinuxNamespaceType::Uts, "uts"),
    (LinuxNamespaceType::Network, "net"),
    (LinuxNamespaceType::Cgroup, "cgroup"),
    (LinuxNamespaceType::Mount, "mnt"),
    (LinuxNamespaceType::Pid, "pid"),
    (LinuxNamespaceType::Time, "time"),
];

/// After entering a user namespace (created or joined): become its root,
/// so the mounts, mknods and setns calls that follow are checked against
/// the namespace's root, not the unmapped ids the process arrived with.
pub fn become_userns_root() -> Result<()> {
    crate::sys::become_userns_root().context("becoming root of the user namespace")
}

pub fn clone_flag(t: LinuxNamespaceType) -> u64 {
    (match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }) as u64
}

impl Namespaces {
    pub fn from_spec(linux: &Linux) -> Result<Namespaces> {
        let mut ns = Namespaces {
            new: Vec::new(),
            join: Vec::new(),
        };
        for (i, n) in linux.namespaces().iter().flatten().enumerate() {
            match n.path() {
                None => {
                    kernel_offers(n.typ(), Path::new("/proc/self/ns"), || {
                        std::fs::read_to_string("/proc/sys/user/max_user_namespaces").ok()
                    })
                    .map_err(|e| anyhow!("linux.namespaces[{i}]: {e}"))?;
                    ns.new.push(n.typ())
                }
                Some(p) => {
                    let fd = crate::sys::open(
                        p,
                        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .map_err(|e| {
                        anyhow!("linux.namespaces[{i}].path: {}: {}", p.display(), e.desc())
                    })?;
                    ns.join.push((n.typ(), fd));
                }
            }
        }
        // User namespace first: joining it changes what the others may do.
        ns.join.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
        Ok(ns)
    }

    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(&t)
    }

    pub fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.join.iter().any(|(j, _)| *j == t)
    }

    /// Flags for the namespaces to create, minus those in `except`.
    pub fn new_flags(&self, except: &[LinuxNamespaceType]) -> u64 {
        self.new
            .iter()
            .filter(|t| !except.contains(t))
            .fold(0, |f, t| f | clone_flag(*t))
    }

    /// Whether the init can be cloned straight from the parent with every
    /// new namespace in one clone(2). Not when a namespace must be joined
    /// first (user, or pid/time which only apply to children), nor for a
    /// new time namespace (its clone flag collides with clone(2)'s CSIGNAL).
    pub fn direct_clone(&self) -> bool {
        let join_first = self.joins(LinuxNamespaceType::User)
            || self.joins(LinuxNamespaceType::Pid)
            || self.joins(LinuxNamespaceType::Time);
        let new_user_and_join = self.creates(LinuxNamespaceType::User) && !self.join.is_empty();
        !join_first && !new_user_and_join && !self.creates(LinuxNamespaceType::Time)
    }

    /// For a direct clone: the CLONE_NEW* flags of the clone, and those the
    /// init unshares itself (once root in its new user namespace, if any).
    /// CLONE_NEWCGROUP is in neither: the init creates that namespace
    /// after it was moved into its cgroup, so that it is the root. With a
    /// new user namespace only it and the pid namespace come with the
    /// clone, so the objects of the rest (the mqueue root, …) belong to
    /// the container's root. Without a user namespace the mount namespace
    /// is left to the init too: it makes it from a template rather than as
    /// a copy of the runtime's (rootfs::template).
    pub fn direct_clone_flags(&self) -> (u64, u64) {
        use LinuxNamespaceType::{Cgroup, Mount, Pid, User};
        if self.creates(User) {
            (
                self.new_flags(&[]) & (clone_flag(User) | clone_flag(Pid)),
                self.new_flags(&[User, Pid, Cgroup]),
            )
        } else {
            (
                self.new_flags(&[Cgroup, Mount]),
                self.new_flags(&[]) & clone_flag(Mount),
            )
        }
    }

    /// setns() into every joined namespace accepted by `filter`, in order.
    pub fn enter(&self, k: &dyn Kernel, filter: impl Fn(LinuxNamespaceType) -> bool) -> Result<()> {
        for (t, fd) in self.join.iter().filter(|(t, _)| filter(*t)) {
            k.setns(fd.as_fd(), *t)
                .with_context(|| format!("joining the {t} namespace"))?;
        }
        Ok(())
    }

    /// The intermediate process's part (see spawn): join the user
    /// namespace or create it (then `in_new_user` runs: its id maps, its
    /// root), join the other namespaces given by path, then create the new
    /// ones but cgroup (the init's, once it is in its cgroup) and pid (the
    /// init's fork makes that one).
    pub fn enter_as_intermediate(
        &self,
        k: &dyn Kernel,
        in_new_user: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        use LinuxNamespaceType::{Cgroup, Pid, User};
        self.enter(k, |t| t == User)?;
        if self.creates(User) {
            k.unshare(CloneFlags::CLONE_NEWUSER)
                .context("creating the user namespace")?;
            in_new_user()?;
        }
        self.enter(k, |t| t != User)?;
        k.unshare(CloneFlags::from_bits_retain(
            self.new_flags(&[User, Cgroup, Pid]) as i32,
        ))
        .context("creating namespaces")?;
        Ok(())
    }
}

/// The name of namespace type `t` in /proc/PID/ns.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Whether this kernel can make a namespace of type `t` (its entry in
/// `ns_dir`, /proc/self/ns, exists; for user namespaces also
/// user.max_user_namespaces, read by `max_user` only then, is not 0).
/// Checked before anything is created, so a config asking for a namespace
/// an older or differently built kernel lacks (time: Linux 5.6) fails
/// naming it instead of as an EINVAL from clone deep in the setup.
pub fn kernel_offers(
    t: LinuxNamespaceType,
    ns_dir: &Path,
    max_user: impl FnOnce() -> Option<String>,
) -> Result<()> {
    let name = proc_name(t);
    // The link itself: following it would make the kernel look up (and
    // possibly allocate) an nsfs inode just to say that it exists.
    if ns_dir.join(name).symlink_metadata().is_err() {
        bail!(
            "this kernel has no {t} namespace ({} does not exist)",
            ns_dir.join(name).display()
        );
    }
    if t == LinuxNamespaceType::User && max_user().is_some_and(|m| m.trim() == "0") {
        bail!("user namespaces are disabled on this host (user.max_user_namespaces is 0)");
    }
    Ok(())
}

/// Who runs the runtime, read once per command: /proc/self/uid_map is
/// read here only, not again by each part that asks (the state root, the
/// cgroup mode, the init).
#[derive(Clone, Copy, Debug)]
pub struct Invoker {
    /// The euid is not 0 (of whatever user namespace we are in). Read
    /// before the clone: in a new user namespace ours changes as soon as
    /// uid_map is written.
    pub unprivileged: bool,
    /// The runtime runs in a user namespace other than the initial one
    /// (rootless podman runs it as root of its own): mknod and a few
    /// mounts are refused even to its root.
    pub in_userns: bool,
}

impl Invoker {
    pub fn current() -> Invoker {
        Invoker {
            unprivileged: !nix::unistd::geteuid().is_root(),
            in_userns: crate::sys::in_user_namespace(),
        }
    }

    /// Whether rcontain runs without the host's root, as runc decides it:
    /// not uid 0, or uid 0 of a user namespace (rootless podman runs the
    /// runtime so) unless USER says root. Then the state lives under
    /// XDG_RUNTIME_DIR and cgroups are optional (`--rootless auto`).
    pub fn rootless(&self) -> bool {
        self.unprivileged
            || (self.in_userns && std::env::var_os("USER").is_none_or(|u| u != "root"))
    }
}

/// Render uid/gid mappings in /proc/PID/uid_map format.
pub fn id_map(maps: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(json: serde_json::Value) -> Namespaces {
        let linux: Linux =
            serde_json::from_value(serde_json::json!({ "namespaces": json })).unwrap();
        Namespaces::from_spec(&linux).unwrap()
    }

    #[test]
    fn direct_clone_decision() {
        assert!(
            ns(serde_json::json!([{"type": "mount"}, {"type": "pid"}, {"type": "user"}]))
                .direct_clone()
        );
        assert!(ns(
            serde_json::json!([{"type": "mount"}, {"type": "network", "path": "/proc/self/ns/net"}])
        )
        .direct_clone());
        assert!(!ns(
            serde_json::json!([{"type": "mount"}, {"type": "pid", "path": "/proc/self/ns/pid"}])
        )
        .direct_clone());
        assert!(!ns(serde_json::json!([{"type": "mount"}, {"type": "time"}])).direct_clone());
        assert!(!ns(
            serde_json::json!([{"type": "user"}, {"type": "network", "path": "/proc/self/ns/net"}])
        )
        .direct_clone());
    }

    #[test]
    fn user_joined_first_and_flags() {
        let n = ns(
            serde_json::json!([{"type": "network", "path": "/proc/self/ns/net"}, {"type": "user", "path": "/proc/self/ns/user"}, {"type": "mount"}, {"type": "uts"}]),
        );
        assert_eq!(n.join[0].0, LinuxNamespaceType::User);
        assert_eq!(
            n.new_flags(&[]),
            (libc::CLONE_NEWNS | libc::CLONE_NEWUTS) as u64
        );
        assert_eq!(
            n.new_flags(&[LinuxNamespaceType::Uts]),
            libc::CLONE_NEWNS as u64
        );
    }

    #[test]
    fn a_namespace_type_the_kernel_lacks_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["mnt", "user"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let allowed = || Some("15000\n".to_string());
        assert!(kernel_offers(LinuxNamespaceType::Mount, dir.path(), allowed).is_ok());
        assert!(kernel_offers(LinuxNamespaceType::User, dir.path(), allowed).is_ok());
        let e = kernel_offers(LinuxNamespaceType::Time, dir.path(), allowed).unwrap_err();
        assert!(e.to_string().contains("no time namespace"), "{e}");
        let e =
            kernel_offers(LinuxNamespaceType::User, dir.path(), || Some("0\n".into())).unwrap_err();
        assert!(e.to_string().contains("max_user_namespaces is 0"), "{e}");
        // not asked for other types
        assert!(kernel_offers(LinuxNamespaceType::Mount, dir.path(), || unreachable!()).is_ok());
    }

    #[test]
    fn direct_clone_flags() {
        let f = |t: &[i32]| t.iter().fold(0, |a, b| a | *b) as u64;
        use libc::{CLONE_NEWIPC, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS};
        let n = ns(
            serde_json::json!([{"type": "mount"}, {"type": "pid"}, {"type": "cgroup"}, {"type": "uts"}]),
        );
        assert_eq!(
            n.direct_clone_flags(),
            (f(&[CLONE_NEWPID, CLONE_NEWUTS]), f(&[CLONE_NEWNS]))
        );
        let n = ns(
            serde_json::json!([{"type": "user"}, {"type": "mount"}, {"type": "pid"}, {"type": "cgroup"}, {"type": "ipc"}]),
        );
        assert_eq!(
            n.direct_clone_flags(),
            (
                f(&[CLONE_NEWUSER, CLONE_NEWPID]),
                f(&[CLONE_NEWNS, CLONE_NEWIPC])
            )
        );
    }

    /// The intermediate: user namespace first (joined, or created and
    /// then mapped), the others joined next, the new ones created last,
    /// cgroup and pid left to the init.
    #[test]
    fn intermediate_order() {
        use crate::kernel::{Call, Recorder};
        use LinuxNamespaceType::{Ipc, Network, User};
        let k = Recorder::default();
        let n = ns(serde_json::json!([
            {"type": "network", "path": "/proc/self/ns/net"},
            {"type": "pid"}, {"type": "cgroup"}, {"type": "mount"}, {"type": "ipc", "path": "/proc/self/ns/ipc"},
            {"type": "user"}, {"type": "uts"}
        ]));
        // The id maps are written right after the user namespace exists.
        let mapped_after = std::cell::Cell::new(None);
        n.enter_as_intermediate(&k, || {
            mapped_after.set(Some(k.calls().len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(mapped_after.get(), Some(1));
        assert_eq!(
            k.calls(),
            [
                Call::Unshare(CloneFlags::CLONE_NEWUSER),
                Call::Setns(Network),
                Call::Setns(Ipc),
                Call::Unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS),
            ]
        );

        let k = Recorder::default();
        let n = ns(serde_json::json!([
            {"type": "network", "path": "/proc/self/ns/net"},
            {"type": "user", "path": "/proc/self/ns/user"}, {"type": "mount"}
        ]));
        n.enter_as_intermediate(&k, || panic!("no new user namespace"))
            .unwrap();
        assert_eq!(
            k.calls(),
            [
                Call::Setns(User),
                Call::Setns(Network),
                Call::Unshare(CloneFlags::CLONE_NEWNS),
            ]
        );
    }

    #[test]
    fn bad_path_names_field() {
        let linux: Linux = serde_json::from_value(serde_json::json!({ "namespaces": [{"type": "mount"}, {"type": "network", "path": "/nonexistent/ns"}] })).unwrap();
        let e = Namespaces::from_spec(&linux).err().unwrap().to_string();
        assert!(e.contains("linux.namespaces[1].path"), "{e}");
    }
}
