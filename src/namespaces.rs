//! Which namespaces a container creates and which it joins.
//!
//! Namespace paths are opened by the parent before anything is spawned, so
//! a wrong path fails `create` with the field name and nothing to undo.
//! Joining always happens before creating (a namespace created after
//! joining a user namespace is owned by that user namespace, as the spec
//! requires), and the user namespace is joined first.

use crate::sys;
use anyhow::{anyhow, Context, Result};
use oci_spec::runtime::{Linux, LinuxNamespaceType};
use std::os::fd::{AsFd, OwnedFd};

pub struct Namespaces {
    pub new: Vec<LinuxNamespaceType>,
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
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
                None => ns.new.push(n.typ()),
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

    /// setns() into every joined namespace accepted by `filter`, in order.
    pub fn enter(&self, filter: impl Fn(LinuxNamespaceType) -> bool) -> Result<()> {
        for (t, fd) in self.join.iter().filter(|(t, _)| filter(*t)) {
            sys::setns(fd.as_fd(), clone_flag(*t) as i32)
                .with_context(|| format!("joining the {t} namespace"))?;
        }
        Ok(())
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
    fn bad_path_names_field() {
        let linux: Linux = serde_json::from_value(serde_json::json!({ "namespaces": [{"type": "mount"}, {"type": "network", "path": "/nonexistent/ns"}] })).unwrap();
        let e = Namespaces::from_spec(&linux).err().unwrap().to_string();
        assert!(e.contains("linux.namespaces[1].path"), "{e}");
    }
}
